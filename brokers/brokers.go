package brokers

import (
	"context"
	"errors"
	"maps"
)

// Message is what travels through a broker. Headers carry the envelope
// contract (see package brokers/envelope); Body is passed through unchanged.
//
// A header that a broker message carries several times (Kafka record
// headers with one key, an AMQP array) reaches Headers as one value, its
// values in order joined by a line feed ("\n"), which no HTTP field value
// contains; backends split such a value again when they publish it.
type Message struct {
	// Key selects the partition or routing key; messages with one key keep
	// their order. The gateway sets it to the correlation id.
	Key     string
	Headers map[string]string
	Body    []byte
}

// Clone returns a deep copy, so a backend can hand a message to several
// consumers (or redeliver it) without one handler's edits reaching another.
func (m Message) Clone() Message {
	c := Message{Key: m.Key, Headers: maps.Clone(m.Headers)}
	if m.Body != nil {
		c.Body = append([]byte(nil), m.Body...)
	}
	return c
}

// Handler processes one message. Returning nil acknowledges (acks, commits) it;
// returning an error asks the backend to redeliver it according to its retry
// policy (at-least-once). The context ends when the subscription stops.
type Handler func(ctx context.Context, m Message) error

// Publisher sends messages to a destination (Kafka topic, AMQP queue or
// routing key, memory queue). Publish returns nil only once the broker holds
// the message (leader/all acks, publisher confirm), so nil means "a consumer
// will see it". Publish is safe for concurrent use.
type Publisher interface {
	Publish(ctx context.Context, dest string, m Message) error
	// Close releases the publisher. It is idempotent; Publish after Close
	// returns an error wrapping ErrClosed.
	Close() error
}

// Subscriber delivers messages from a source to a Handler.
type Subscriber interface {
	// Subscribe consumes source until ctx ends (then it returns nil after the
	// in-flight handlers returned) or a fatal error occurs. Consumers that
	// subscribe to one source with the same group compete for its messages:
	// each message is handled by one of them.
	Subscribe(ctx context.Context, source string, h Handler, opts ...SubscribeOption) error
	// Close stops every subscription and releases the connection. It is
	// idempotent and returns only when the subscriptions' goroutines exited.
	Close() error
}

// SubscribeConfig is the effective configuration of one Subscribe call.
type SubscribeConfig struct {
	// Group names the consumer group; subscribers in one group share the work.
	// Empty means the backend's default group for the source.
	Group string
	// Concurrency is how many handler calls may run at once (default 1).
	// Order per key is guaranteed when it is 1; backends that shard by key
	// may keep it for higher values too.
	Concurrency int
	// Ready, when set, is called once, when the subscription is assigned and
	// positioned so that a message published from now on will be delivered.
	// Readiness probes and tests wait on it instead of sleeping.
	Ready func()
	// Inbox marks the subscription as a gateway node's private reply inbox:
	// one consumer, no competing group, addressed by the node's reply-to.
	// Backends may declare it differently from a service's work queue (a
	// per-node topic, an AMQP queue with x-expires that outlives a dropped
	// connection).
	Inbox bool
	// DeadLetter, when set, is called once for each message the backend
	// gives up on (its handler failed on the backend's last attempt, so the
	// message goes to the dead-letter destination instead of being
	// delivered again), with the handler's last error, before the message
	// is settled. A request/reply service uses it to answer the waiting
	// caller at once (brokers/responder sends a 502 failure reply). It must
	// not block for long: the message's partition or queue slot waits.
	DeadLetter func(ctx context.Context, m Message, err error)
}

// SubscribeOption adjusts a SubscribeConfig.
type SubscribeOption func(*SubscribeConfig)

// WithGroup sets the consumer group.
func WithGroup(group string) SubscribeOption {
	return func(c *SubscribeConfig) { c.Group = group }
}

// WithConcurrency sets how many handler calls may run at once.
func WithConcurrency(n int) SubscribeOption {
	return func(c *SubscribeConfig) { c.Concurrency = n }
}

// WithReady registers a callback invoked once the subscription is positioned.
func WithReady(f func()) SubscribeOption {
	return func(c *SubscribeConfig) { c.Ready = f }
}

// AsInbox marks the subscription as a node's reply inbox (see SubscribeConfig.Inbox).
func AsInbox() SubscribeOption {
	return func(c *SubscribeConfig) { c.Inbox = true }
}

// WithDeadLetter registers the callback for messages the backend gives up
// on (see SubscribeConfig.DeadLetter).
func WithDeadLetter(f func(ctx context.Context, m Message, err error)) SubscribeOption {
	return func(c *SubscribeConfig) { c.DeadLetter = f }
}

// NewSubscribeConfig applies opts over the defaults. Backends call it.
func NewSubscribeConfig(opts ...SubscribeOption) SubscribeConfig {
	c := SubscribeConfig{Concurrency: 1}
	for _, o := range opts {
		o(&c)
	}
	if c.Concurrency < 1 {
		c.Concurrency = 1
	}
	if c.Ready == nil {
		c.Ready = func() {}
	}
	if c.DeadLetter == nil {
		c.DeadLetter = func(context.Context, Message, error) {}
	}
	return c
}

var (
	// ErrClosed is returned by operations on a closed publisher or subscriber.
	ErrClosed = errors.New("brokers: closed")
	// ErrUnavailable wraps failures to reach the broker (connection down,
	// no leader, timeout waiting for an ack). The gateway answers 503.
	ErrUnavailable = errors.New("brokers: broker unavailable")
	// ErrUnroutable is returned when the broker holds no destination for the
	// message (AMQP mandatory return, unknown topic). The gateway answers 503.
	ErrUnroutable = errors.New("brokers: destination unroutable")
	// ErrInUse is returned by an inbox Subscribe (AsInbox) when another live
	// process consumes that reply address already: two gateway processes
	// with one node id would each take some of the other's replies. It is
	// fatal: the node must not start.
	ErrInUse = errors.New("brokers: reply address in use by another process")
)
