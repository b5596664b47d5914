package rabbitmq

// What becomes of one delivery: the handler runs, a failure with
// brokers.ErrUnavailable holds the delivery and calls the handler again
// instead of spending an attempt, and the delivery is then acked, requeued
// or rejected to the dead-letter exchange, with the DeadLetter callback on
// the last attempt. Classic work queues count attempts in attempts.go.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
)

// handle runs h on d and settles d. On a classic work queue, which has no
// delivery count, the subscription counts attempts itself: see requeue.
// When the handler fails on the last attempt (see lastAttempt), the
// DeadLetter callback gets the message before it is rejected to the
// dead-letter exchange.
func (s *subscription) handle(ctx context.Context, h brokers.Handler, d amqp.Delivery) {
	counting := !s.sc.Inbox && s.c.cfg.QueueType == QueueTypeClassic
	if counting && d.Redelivered && s.requeue(ctx, d, errUnsettled) == nil {
		// Back after a handler that never settled it (a crash, a dropped
		// connection, a subscriber that stopped) or a plain requeue: that
		// delivery counts as an attempt, as a quorum queue counts it.
		return
	}
	last := s.lastAttempt(d)
	m := s.decode(d)
	if !s.sc.Inbox {
		// A failed delivery is published again from d, handed to
		// DeadLetter or to the handler again (see hold) decoded from d:
		// the handler may scribble on its copy of the body.
		m.Body = bytes.Clone(m.Body)
	}
	err := call(ctx, h, m)
	if err != nil && !s.sc.Inbox {
		err = s.hold(ctx, h, d, err)
	}
	switch {
	case err == nil:
		s.settle(d, ack)
	case counting:
		if rerr := s.requeue(ctx, d, err); rerr != nil {
			if !errors.Is(rerr, errRetired) {
				// The copy could not be published (the publishing
				// connection is down): requeued as it is, d would be back
				// at once, uncounted; pause as a reconnection does.
				_ = sleep(ctx, s.c.cfg.ReconnectInterval)
			}
			s.settle(d, requeue)
		}
	case last && s.sc.Inbox:
		// A reply queue has no delivery count: the redelivered flag marks
		// the second attempt, rejected to the dead-letter exchange.
		s.deadLetter(ctx, d, err)
		s.settle(d, reject)
	case last:
		// Returned once more, the message is over the quorum queue's
		// x-delivery-limit and the broker dead-letters it (x-death reason
		// delivery_limit), also when the consumer was retired meanwhile.
		s.deadLetter(ctx, d, err)
		s.settle(d, requeue)
	default:
		s.settle(d, requeue)
	}
}

// Bounds of the pause between the calls of hold.
const (
	minHoldBackoff = 50 * time.Millisecond
	maxHoldBackoff = time.Second
	// holdWindow bounds hold for a message without a deadline header.
	holdWindow = 30 * time.Second
)

// hold calls h on d again, with a jittered backoff, while it fails with an
// error wrapping brokers.ErrUnavailable (what the handler needs, such as
// the connection it publishes its reply on, is down), for as long as the
// message's deadline header allows (holdWindow without one), the
// subscription runs and d's consumer is live. It returns the last error.
//
// A broker that is unavailable is no fault of the message, but a failed
// delivery is returned to the queue and counted: on a quorum queue every
// return spends one of MaxDeliveries at once, so a connection blip would
// dead-letter every message in flight in milliseconds. Holding the
// delivery unsettled instead spends nothing. The handler runs again, as it
// would on a redelivery (at least once).
func (s *subscription) hold(ctx context.Context, h brokers.Handler, d amqp.Delivery, err error) error {
	until := time.Now().Add(holdWindow)
	if dl, ok := d.Headers[envelope.Deadline].(string); ok {
		if t, perr := time.Parse(time.RFC3339Nano, dl); perr == nil {
			until = t
		}
	}
	backoff := minHoldBackoff
	for calls := 1; errors.Is(err, brokers.ErrUnavailable) && s.isLive(d); calls++ {
		pause := min(backoff/2+rand.N(backoff/2+1), time.Until(until))
		if pause <= 0 {
			break
		}
		if calls == 1 {
			s.log.Warn("rabbitmq: handler failed, broker unavailable; holding the message and calling it again",
				slog.String("correlation_id", d.CorrelationId), slog.Any("error", err), slog.Time("until", until))
		}
		if sleep(ctx, pause) != nil {
			break
		}
		m := s.decode(d)
		m.Body = bytes.Clone(m.Body)
		err = call(ctx, h, m)
		backoff = min(2*backoff, maxHoldBackoff)
	}
	return err
}

// lastAttempt reports whether d is its message's last delivery: on a
// quorum work queue, x-delivery-count (the returns before this delivery)
// reached MaxDeliveries-1, the queue's x-delivery-limit; on a classic work
// queue, the attempt header reached MaxDeliveries; on a reply queue, which
// requeues a failed reply once, d is redelivered.
func (s *subscription) lastAttempt(d amqp.Delivery) bool {
	switch {
	case s.sc.Inbox:
		return d.Redelivered
	case s.c.cfg.QueueType == QueueTypeClassic:
		return attempt(d) >= int64(s.c.cfg.MaxDeliveries)
	}
	n, _ := integer(d.Headers[deliveryCountHeader])
	return n >= int64(s.c.cfg.MaxDeliveries-1)
}

// deadLetter tells the subscriber that d goes to the dead-letter exchange
// after its handler failed with err, with a fresh decoding of d (the
// handler's copy may have been altered).
func (s *subscription) deadLetter(ctx context.Context, d amqp.Delivery, err error) {
	s.log.Warn("rabbitmq: message dead-lettered after its last attempt",
		slog.Int("max_deliveries", s.c.cfg.MaxDeliveries), slog.String("correlation_id", d.CorrelationId),
		slog.Any("error", err))
	s.sc.DeadLetter(ctx, s.decode(d), err)
}

// deliveryCountHeader is set by a quorum queue on a redelivery: how many
// times the message was returned before.
const deliveryCountHeader = "x-delivery-count"

type settlement int

const (
	ack     settlement = iota
	requeue            // nack with requeue
	reject             // nack without requeue: dead-lettered
)

// settle acks or nacks d unless its consumer was retired by a loss (then the
// broker has requeued it already and its tag means nothing on the reopened
// channel).
func (s *subscription) settle(d amqp.Delivery, how settlement) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if d.ConsumerTag != s.live {
		return
	}
	var err error
	switch how {
	case ack:
		err = d.Ack(false)
	case requeue:
		err = d.Nack(false, true)
	case reject:
		err = d.Nack(false, false)
	}
	if err != nil {
		s.log.Debug("rabbitmq: settle failed; the broker requeues on channel close", slog.Any("error", err))
	}
}

// call runs h, turning a panic into an error (the message is redelivered).
func call(ctx context.Context, h brokers.Handler, m brokers.Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("rabbitmq: handler panicked: %v", p)
		}
	}()
	return h(ctx, m)
}
