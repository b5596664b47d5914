package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/syncgate/syncgate/brokers"
)

// Config configures a Broker. Zero and negative fields take their defaults.
type Config struct {
	// QueueSize bounds the queue of each group of each destination
	// (default 10000). Publish blocks while a queue it must fill is full.
	QueueSize int
	// RetryDelay is the pause before a message whose handler failed is
	// handed to the handler again (default 10ms). It doubles per attempt.
	RetryDelay time.Duration
	// MaxRetryDelay caps the retry backoff (default 1s).
	MaxRetryDelay time.Duration
	// MaxDeliveries is how many times a message whose handler keeps failing
	// is handed to it (default 5, like the other backends). Then it is
	// given up on: the subscription's DeadLetter callback gets it and it is
	// dropped, so it holds its key no longer. The memory broker keeps no
	// dead letters: nothing could read them after the process.
	MaxDeliveries int
}

// Defaults of Config.
const (
	DefaultQueueSize     = 10000
	DefaultRetryDelay    = 10 * time.Millisecond
	DefaultMaxRetryDelay = time.Second
	DefaultMaxDeliveries = 5
)

func (c *Config) setDefaults() {
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.MaxRetryDelay <= 0 {
		c.MaxRetryDelay = DefaultMaxRetryDelay
	}
	if c.MaxDeliveries <= 0 {
		c.MaxDeliveries = DefaultMaxDeliveries
	}
	if c.MaxRetryDelay < c.RetryDelay {
		c.MaxRetryDelay = c.RetryDelay
	}
}

// ErrNoHandler is returned by Subscribe when the handler is nil.
var ErrNoHandler = errors.New("memory: nil handler")

// Broker is an in-process broker. It implements brokers.Publisher and
// brokers.Subscriber; all methods are safe for concurrent use.
type Broker struct {
	cfg    Config
	topics sync.Map // destination name → *topic

	// ctx is cancelled by Close: it unblocks Publish and stops every
	// subscription.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex // orders subs.Add after closed is set against Close's subs.Wait
	closed atomic.Bool
	subs   sync.WaitGroup // running Subscribe calls
}

var (
	_ brokers.Publisher  = (*Broker)(nil)
	_ brokers.Subscriber = (*Broker)(nil)
)

// New returns an open Broker. Close releases it.
func New(cfg Config) *Broker {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Broker{cfg: cfg, ctx: ctx, cancel: cancel}
}

// Publish queues a copy of m for every group of dest, creating dest on first
// use. It blocks while a queue is full, until ctx ends or the Broker closes.
func (b *Broker) Publish(ctx context.Context, dest string, m brokers.Message) error {
	if b.closed.Load() {
		return fmt.Errorf("memory: publish to %q: %w", dest, brokers.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: publish to %q: %w", dest, err)
	}
	if dest == "" {
		return fmt.Errorf("memory: publish to empty destination: %w", brokers.ErrUnroutable)
	}
	m = m.Clone()
	for _, g := range *b.topic(dest).groups.Load() {
		select {
		case g.queue <- m:
			continue
		default:
		}
		select {
		case g.queue <- m:
		case <-ctx.Done():
			return fmt.Errorf("memory: publish to %q: queue full: %w", dest, ctx.Err())
		case <-b.ctx.Done():
			return fmt.Errorf("memory: publish to %q: %w", dest, brokers.ErrClosed)
		}
	}
	return nil
}

// Subscribe hands the messages of source to h until ctx ends (it then
// returns nil once its handlers returned) or the Broker closes (it then
// returns an error wrapping brokers.ErrClosed). Ready is called once the
// subscription is registered: a message published after it is delivered.
func (b *Broker) Subscribe(ctx context.Context, source string, h brokers.Handler, opts ...brokers.SubscribeOption) error {
	if h == nil {
		return fmt.Errorf("memory: subscribe to %q: %w", source, ErrNoHandler)
	}
	if source == "" {
		return fmt.Errorf("memory: subscribe to empty source: %w", brokers.ErrUnroutable)
	}
	cfg := brokers.NewSubscribeConfig(opts...)

	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return fmt.Errorf("memory: subscribe to %q: %w", source, brokers.ErrClosed)
	}
	b.subs.Add(1)
	b.mu.Unlock()
	defer b.subs.Done()

	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel)
	defer stop()

	s := newSubscription(b.topic(source).join(cfg.Group), h, cfg, b.cfg)
	cfg.Ready()
	s.run(subCtx)

	if ctx.Err() == nil && b.ctx.Err() != nil {
		return fmt.Errorf("memory: subscription to %q: %w", source, brokers.ErrClosed)
	}
	return nil
}

// Close stops every subscription, waits until their handlers returned and
// makes later Publish and Subscribe calls fail with brokers.ErrClosed.
// Queued messages are dropped. Close is idempotent and always returns nil.
func (b *Broker) Close() error {
	b.mu.Lock()
	b.closed.Store(true)
	b.mu.Unlock()
	b.cancel()
	b.subs.Wait()
	return nil
}

// topic returns the destination name, creating it on first use.
func (b *Broker) topic(name string) *topic {
	if t, ok := b.topics.Load(name); ok {
		return t.(*topic)
	}
	t, _ := b.topics.LoadOrStore(name, newTopic(b.cfg.QueueSize))
	return t.(*topic)
}
