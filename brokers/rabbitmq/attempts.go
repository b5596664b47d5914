package rabbitmq

// The attempt counter of classic work queues: a classic queue has no
// delivery count (quorum queues do, and the broker enforces their
// x-delivery-limit), so the subscription numbers attempts in a header,
// republishing a failed message with one attempt more and dead-lettering it
// after MaxDeliveries. It is a second retry engine beside the broker's, kept
// apart so that its duplicate-avoidance rules are read in one place.

import (
	"context"
	"errors"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers/envelope"
)

// errUnsettled is the DeadLetter error of a classic-queue message whose
// last attempt ended without its handler settling it.
var errUnsettled = errors.New("rabbitmq: the last attempt ended without settling the message (a dropped connection or a stopped consumer)")

// attemptHeader numbers the deliveries of a message on a classic work
// queue (1 when absent). It is an integer: decode does not pass it to
// handlers.
const attemptHeader = "x-syncgate-attempt"

// errRetired: the delivery's consumer was retired by a connection loss.
var errRetired = errors.New("consumer retired by a connection loss")

// requeue settles the delivery d of a classic work queue that failed (or
// came back unsettled): once it was delivered MaxDeliveries times it is
// rejected to the dead-letter exchange (x-death reason rejected), after the
// DeadLetter callback got it with cause (the handler's error); before, a
// copy numbered one attempt more is published to the tail of the queue (the
// default exchange, so no other queue bound to the source gets it) and d is
// acked once the copy is confirmed. It returns an error, leaving d
// unsettled, when the copy cannot be published (the caller requeues d as it
// is: it comes back redelivered and is counted then) or d's consumer was
// retired (the broker has requeued d already: a copy would fork it).
//
// The copy and the ack of d are two operations: when the subscription's
// connection drops between them, both the copy and d come back, one
// duplicate as at-least-once delivery allows.
func (s *subscription) requeue(ctx context.Context, d amqp.Delivery, cause error) error {
	if !s.isLive(d) {
		return errRetired
	}
	n := attempt(d) + 1
	if n > int64(s.c.cfg.MaxDeliveries) {
		s.deadLetter(ctx, d, cause)
		s.settle(d, reject)
		return nil
	}
	// Once sent, the copy is waited for even if ctx ends or the Client
	// closes (Close waits for the subscriptions before it closes the
	// publishing connection): giving up on its confirm and requeueing d as
	// well would leave two copies. ConfirmTimeout bounds the wait.
	if err := s.c.publish(context.WithoutCancel(ctx), nil, "", s.queue, true, republishing(d, n)); err != nil {
		s.log.Warn("rabbitmq: cannot requeue a message with its attempt count; requeueing it as it is",
			slog.Any("error", err))
		return err
	}
	s.settle(d, ack)
	return nil
}

func attempt(d amqp.Delivery) int64 {
	switch v := d.Headers[attemptHeader].(type) {
	case int64:
		return max(v, 1)
	case int32:
		return max(int64(v), 1)
	}
	return 1
}

// republishing is d as a new message numbered n, its expiration recomputed
// from the deadline header (the broker does not say how much of the
// original expiration is left).
func republishing(d amqp.Delivery, n int64) amqp.Publishing {
	h := make(amqp.Table, len(d.Headers)+1)
	for k, v := range d.Headers {
		h[k] = v
	}
	h[attemptHeader] = n
	// Sender-selected distribution would route the copy to other queues.
	delete(h, "CC")
	delete(h, "BCC")
	p := amqp.Publishing{
		Headers:         h,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    d.DeliveryMode,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		Expiration:      d.Expiration,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}
	if dl, ok := d.Headers[envelope.Deadline].(string); ok {
		if t, err := time.Parse(time.RFC3339Nano, dl); err == nil {
			p.Expiration = expiration(time.Until(t))
		}
	}
	return p
}
