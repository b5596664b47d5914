package rabbitmq

// Subscribe and its consume loop: set the consumer up (retrying what is
// transient, failing on what the broker refuses), hand deliveries to the
// worker goroutines, and start over after a loss or a broker-side cancel.
// What becomes of one delivery is in settle.go; how a consumer survives a
// connection loss is in recovery.go.

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers"
)

// maxSetupFailures bounds consecutive failed setups (declare, qos, consume)
// on an open connection that the broker did not refuse outright; past it
// Subscribe returns the error.
const maxSetupFailures = 5

// Subscribe consumes the queue for source until ctx ends or Close, calling h
// on up to Concurrency goroutines (with AsInbox, the messages of one
// correlation id on one of them, in order); each delivery is acknowledged after h
// returns nil and, after an error, nacked with requeue (on a classic work
// queue: acked once a copy counting one more attempt is queued), out of
// order, by delivery tag; an error wrapping brokers.ErrUnavailable is
// retried first, the delivery held (see hold). On the last attempt the
// DeadLetter callback gets the failed message. Subscribe declares the topology it needs (see the
// package doc): a durable quorum (or classic, with QueueType) queue named
// source (or the group, with an exchange), dead-lettering after
// MaxDeliveries; with AsInbox, a durable reply queue with x-expires, or
// direct reply-to when configured. Ready is
// called once the consumer is registered. A broker outage is waited out; the
// consumer resumes after recovery. Subscribe returns nil when ctx ends, after
// its in-flight handlers returned.
func (c *Client) Subscribe(ctx context.Context, source string, h brokers.Handler, opts ...brokers.SubscribeOption) error {
	sc := brokers.NewSubscribeConfig(opts...)
	if source == "" {
		return errors.New("rabbitmq: subscribe: empty source")
	}
	queue := source
	if sc.Group != "" && !sc.Inbox && c.cfg.Exchange != "" {
		queue = sc.Group
	}
	if err := c.enter(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		c.subsWG.Done()
		return nil
	}
	defer c.subsWG.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()

	if sc.Inbox && c.cfg.DirectReplyTo {
		return c.subscribeDirect(ctx, source, h, sc)
	}
	s := &subscription{c: c, source: source, queue: queue, sc: sc, log: c.log.With(slog.String("queue", queue))}
	c.track(s, true)
	defer c.track(s, false)
	if err := s.connect(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer s.close()
	return s.run(ctx, h)
}

// subscription is one Subscribe call on its own connection and channel.
//
// amqp091-go recovers the connection and reopens the channel, but topology
// recovery is disabled on this connection and the subscription re-runs its
// own declare/qos/consume with a fresh consumer tag after every reopen. The
// library's consumer recovery would re-subscribe under the old tag into the
// old delivery channel, and a handler finishing after the recovery would then
// ack its pre-outage delivery tag on the new channel, where tags restart at
// 1: the broker closes the channel (406 unknown delivery tag) or, worse, the
// tag names another message, which is acknowledged unprocessed. Here an ack
// is sent only when the delivery's consumer tag is the live one, and the
// live tag is retired by the recovery hook before the channel reopens.
type subscription struct {
	c      *Client
	source string
	queue  string
	sc     brokers.SubscribeConfig
	log    *slog.Logger

	conn  *amqp.Connection
	ch    *amqp.Channel
	connW *stateWatch
	chanW *stateWatch

	mu        sync.RWMutex // held for reading while acking
	live      string       // consumer tag whose acks reach the broker
	gen       uint64       // incremented by every loss
	needOpens uint64       // channel opens to see before using the channel
	dead      chan struct{}
	stale     []staleConsumer
	readyFn   sync.Once

	drains sync.WaitGroup
}

type job struct{ d amqp.Delivery }

func (s *subscription) run(ctx context.Context, h brokers.Handler) error {
	// A reply queue (Inbox) hands the messages of one correlation id to
	// one worker, in order: a service's progress messages and its reply
	// are handled in the order they were sent. Other queues hand each
	// delivery to whichever worker is free.
	lanes := 1
	if s.sc.Inbox {
		lanes = s.sc.Concurrency
	}
	work := make([]chan job, lanes)
	seed := maphash.MakeSeed() // one for the subscription: an id keeps its lane across reconnections
	for i := range work {
		work[i] = make(chan job)
	}
	var workers sync.WaitGroup
	for i := range s.sc.Concurrency {
		lane := work[i%lanes]
		workers.Add(1)
		go func() {
			defer workers.Done()
			for j := range lane {
				s.handle(ctx, h, j.d)
			}
		}()
	}
	defer workers.Wait()
	defer func() {
		for _, w := range work {
			close(w)
		}
	}()

	failures := 0
	consumed := false        // a setup succeeded once
	var inUseSince time.Time // first in-use refusal since the last success
	for {
		deliveries, tag, dead, err := s.setup(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, errGone) {
				return fmt.Errorf("%w: rabbitmq: subscribe %q: connection closed: %v", brokers.ErrUnavailable, s.queue, err)
			}
			if s.sc.Inbox && inUse(err) {
				if inUseSince.IsZero() {
					inUseSince = time.Now()
					s.log.Warn("rabbitmq: reply queue held by another consumer; retrying briefly",
						slog.Any("error", err), slog.Duration("for", s.inUseGrace(consumed)))
				}
				if time.Since(inUseSince) > s.inUseGrace(consumed) {
					return fmt.Errorf("rabbitmq: subscribe %q: %w: %v", s.queue, brokers.ErrInUse, err)
				}
				s.pause(ctx)
				continue
			}
			if refused(err) {
				// Not transient: a queue declared with other arguments, a
				// missing permission. Retrying would fail the same way.
				return fmt.Errorf("rabbitmq: subscribe %q: %w", s.queue, err)
			}
			if !errors.Is(err, errLost) {
				if failures++; failures >= maxSetupFailures {
					return fmt.Errorf("rabbitmq: subscribe %q: %w", s.queue, err)
				}
				s.log.Warn("rabbitmq: subscription setup failed", slog.Any("error", err))
			}
			s.pause(ctx)
			continue
		}
		failures, consumed, inUseSince = 0, true, time.Time{}
		s.readyFn.Do(s.sc.Ready)
		switch s.serve(ctx, deliveries, dead, work, seed) {
		case stopCtx:
			// No basic.cancel: deliveries not handed to a handler are
			// requeued when close ends the connection, after the running
			// handlers settled theirs.
			return nil
		case stopLost:
			s.retireConsumer(tag, deliveries)
		case stopCancelled:
			// The broker cancelled the consumer (queue deleted): declare and
			// consume again.
			s.log.Warn("rabbitmq: consumer cancelled by the broker; re-subscribing")
			s.retire()
		}
	}
}

// pause waits after a failed setup for the next state change of the
// channel, at most ReconnectInterval, so a failure seen before the library
// reported the loss does not spin.
func (s *subscription) pause(ctx context.Context) {
	changed := s.chanW.state().changed
	t := time.NewTimer(s.c.cfg.ReconnectInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-changed:
	case <-t.C:
	}
}

// refused reports whether the broker refused an operation with a channel
// exception (403 access refused, 404 not found, 405 resource locked, 406
// precondition failed): retrying after the recovery fails the same way,
// unlike a lost connection.
func refused(err error) bool {
	var ae *amqp.Error
	if !errors.As(err, &ae) || !ae.Server {
		return false
	}
	switch ae.Code {
	case amqp.AccessRefused, amqp.NotFound, amqp.ResourceLocked, amqp.PreconditionFailed:
		return true
	}
	return false
}

// inUse reports whether err is the broker refusing an exclusive consumer
// because the queue has another consumer (403 ACCESS_REFUSED, "in
// exclusive use"), as opposed to a missing permission (also 403).
func inUse(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Server && ae.Code == amqp.AccessRefused &&
		strings.Contains(ae.Reason, "exclusive use")
}

// firstInUseGrace is how long a new reply-queue subscription retries an
// in-use refusal: long enough for a consumer that is being closed (a
// cluster node handing an adopted queue back) to be gone, short enough
// that a second process with the node's id fails well within 15 s.
const firstInUseGrace = 3 * time.Second

// inUseGrace is how long a reply queue's subscription retries an in-use
// refusal: firstInUseGrace at first; after a reconnection longer, since
// the broker drops a dead connection, and its consumer, only once its
// heartbeats are missed.
func (s *subscription) inUseGrace(reconnection bool) time.Duration {
	switch {
	case !reconnection:
		return firstInUseGrace
	case s.c.cfg.Heartbeat > 0:
		return 3 * s.c.cfg.Heartbeat
	}
	return 30 * time.Second
}

type stopReason int

const (
	stopCtx stopReason = iota
	stopLost
	stopCancelled
)

func (s *subscription) serve(ctx context.Context, deliveries <-chan amqp.Delivery, dead <-chan struct{}, work []chan job, seed maphash.Seed) stopReason {
	for {
		select {
		case <-ctx.Done():
			return stopCtx
		case <-dead:
			return stopLost
		case d, ok := <-deliveries:
			if !ok {
				select {
				case <-dead:
					return stopLost
				default:
					return stopCancelled
				}
			}
			select {
			case work[lane(seed, d, len(work))] <- job{d}:
			case <-ctx.Done():
				return stopCtx
			case <-dead:
				return stopLost
			}
		}
	}
}

// sleep waits for d, or returns ctx.Err() when ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
