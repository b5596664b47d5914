package nats

import (
	"context"
	"errors"
	"fmt"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
)

// Publish sends m to the subject dest.
//
// In core mode it is a core NATS publish: nil means the message went to
// the connection while it was up; the server delivers it to the
// subscribers it has at that moment, and to nobody if there are none (at
// most once).
//
// In jetstream mode a subject under ReplyPrefix (a reply) is core NATS
// too, sent as a request that the subscription answers once its handler
// took the message (see the package doc): nil means a subscriber took it;
// an error wrapping brokers.ErrUnavailable means none did in time (no
// subscriber, or no answer within ctx and ConfirmTimeout), so that a
// service does not acknowledge a request whose reply reached nobody.
//
// In jetstream mode every other subject is published to JetStream, with
// the correlation id as its Nats-Msg-Id (see the package doc), and Publish
// waits for the stream's ack (within ctx and ConfirmTimeout):
//   - nil: the stream holds the message (on Replicas servers);
//   - an error wrapping brokers.ErrUnroutable: no stream captures dest (the
//     stream is created by the first Subscribe to dest);
//   - an error wrapping brokers.ErrUnavailable: the connection is down, or
//     no ack came in time (the message may or may not be stored).
//
// In both modes Publish fails at once with brokers.ErrUnavailable while the
// connection is down: nothing is buffered for a reconnection that might not
// come. A message larger than the server's max_payload has its body put in
// the body bucket first (see the package doc). After Close it returns
// brokers.ErrClosed; with an ended ctx, ctx's error.
func (c *Client) Publish(ctx context.Context, dest string, m brokers.Message) error {
	if c.ctx.Err() != nil {
		return fmt.Errorf("nats: publish: %w", brokers.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("nats: publish to %q: %w", dest, err)
	}
	if err := checkSubject(dest); err != nil {
		return fmt.Errorf("%w: nats: publish: %v", brokers.ErrUnroutable, err)
	}
	msg, err := encode(dest, m)
	if err != nil {
		return err
	}
	if !c.nc.IsConnected() {
		return fmt.Errorf("%w: nats: publish to %q: not connected (%s)", brokers.ErrUnavailable, dest, c.nc.Status())
	}
	core := c.core(dest)
	if !core {
		dedupByCorrelationID(msg, m) // before the size is checked: it counts
	}
	var ref string
	if c.tooLarge(msg) {
		if ref, err = c.bodies.offload(ctx, msg); err != nil {
			return err
		}
	}
	switch {
	case core && c.cfg.Mode == ModeJetStream:
		// A reply whose request a stream holds: the request is acked
		// only after this returns nil, so it must have been taken.
		pctx, cancel := context.WithTimeout(ctx, c.cfg.ConfirmTimeout)
		_, err = c.nc.RequestMsgWithContext(pctx, msg)
		cancel()
	case core:
		err = c.nc.PublishMsg(msg)
	default:
		pctx, cancel := context.WithTimeout(ctx, c.cfg.ConfirmTimeout)
		_, err = c.js.PublishMsg(pctx, msg)
		cancel()
	}
	if err != nil {
		if ref != "" {
			c.bodies.remove(context.WithoutCancel(ctx), ref)
		}
		return c.publishError(ctx, dest, err)
	}
	return nil
}

// dedupByCorrelationID sets the Nats-Msg-Id of a message that has a
// correlation id (a request; replies are core NATS) to that id, unless the
// message has one of its own: a stream stores one message of an id within
// its duplicate window, so a request published again, by the gateway's
// outbox after a publish whose ack did not come in time, is not handled
// twice.
func dedupByCorrelationID(msg *natsgo.Msg, m brokers.Message) {
	id := m.Headers[envelope.CorrelationID]
	if id == "" || len(msg.Header[jetstream.MsgIDHeader]) > 0 {
		return
	}
	msg.Header[jetstream.MsgIDHeader] = []string{id}
}

// publishError maps a nats.go publish error to the brokers sentinels,
// keeping the cause.
func (c *Client) publishError(ctx context.Context, dest string, err error) error {
	var apiErr *jetstream.APIError
	switch {
	case c.ctx.Err() != nil && errors.Is(err, natsgo.ErrConnectionClosed):
		return fmt.Errorf("nats: publish to %q: %w", dest, brokers.ErrClosed)
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// The caller gave up; the server is not known to be at fault.
		return fmt.Errorf("nats: publish to %q: %w", dest, err)
	case errors.Is(err, natsgo.ErrNoResponders):
		return fmt.Errorf("%w: nats: nobody subscribes to reply subject %q (its gateway node is not connected)", brokers.ErrUnavailable, dest)
	case errors.Is(err, jetstream.ErrNoStreamResponse):
		return fmt.Errorf("%w: nats: no stream captures subject %q (in jetstream mode a Subscribe to it creates %s): %v",
			brokers.ErrUnroutable, dest, c.cfg.StreamName(dest), err)
	case errors.Is(err, natsgo.ErrMaxPayload):
		return fmt.Errorf("%w: nats: publish to %q: %v", ErrMessageTooLarge, dest, err)
	case errors.Is(err, natsgo.ErrBadSubject):
		return fmt.Errorf("%w: nats: publish to %q: %v", brokers.ErrUnroutable, dest, err)
	case errors.As(err, &apiErr) && apiErr.Code >= 400 && apiErr.Code < 500:
		// The stream refused the message (too large for it, a limit
		// reached with discard new): retrying now fails the same way.
		return fmt.Errorf("nats: publish to %q: stream refused the message: %w", dest, err)
	default:
		// Not connected, the reconnect buffer refused, no ack within the
		// deadline, JetStream temporarily unavailable.
		return fmt.Errorf("%w: nats: publish to %q: %w", brokers.ErrUnavailable, dest, err)
	}
}

// storage is the JetStream storage of the streams the Client creates.
func (c *Client) storage() jetstream.StorageType {
	if c.cfg.Storage == StorageMemory {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}
