package rabbitmq

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
)

// keyHeader carries brokers.Message.Key, which AMQP has no property for.
const keyHeader = "x-syncgate-key"

// directReplyTo is RabbitMQ's direct reply-to pseudo-queue.
const directReplyTo = "amq.rabbitmq.reply-to"

// Publish sends m to the queue named dest: through the configured exchange
// with dest as routing key, or the default exchange when none is configured
// (direct reply-to addresses always use the default exchange, without the
// mandatory flag). It is published persistent (transient with
// Config.TransientReplies for a reply, Config.TransientRequests for any other
// message) and mandatory, and Publish returns only after the broker's
// confirm:
//   - nil: the broker holds the message in a queue;
//   - an error wrapping brokers.ErrUnroutable: no queue is bound for dest;
//   - an error wrapping brokers.ErrUnavailable: the connection is down (at
//     once, without waiting for recovery), the broker nacked, or no confirm
//     came within ConfirmTimeout; the message may or may not have been queued;
//   - ctx.Err() when ctx ends first; brokers.ErrClosed after Close.
//
// A dest of the form /exchanges/EXCHANGE/ROUTING-KEY (RabbitMQ's AMQP 1.0
// address format; both segments percent-encoded, ExchangeAddress builds
// it) publishes to that exchange, which the operator declares and binds,
// with that routing key, mandatory as above. Before the first publish to
// an exchange, Publish checks on a channel of its own that it exists (a
// publish to a missing exchange would close the shared channel): a missing
// one is an error wrapping brokers.ErrUnroutable.
func (c *Client) Publish(ctx context.Context, dest string, m brokers.Message) error {
	if c.ctx.Err() != nil {
		return fmt.Errorf("rabbitmq: publish: %w", brokers.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := c.publishing(m)
	if err != nil {
		return err
	}
	exchange, mandatory := c.cfg.Exchange, true
	if x, key, ok, err := parseExchangeAddress(dest); ok {
		if err != nil {
			return err
		}
		if err := c.checkExchange(x); err != nil {
			return err
		}
		return c.publish(ctx, c.ctx.Done(), x, key, true, p)
	}
	if strings.HasPrefix(dest, directReplyTo) {
		// RabbitMQ (3.10) returns a mandatory publish to a direct reply-to
		// address as NO_ROUTE although it delivered it: publish these
		// without mandatory (a gone requester cannot be detected; direct
		// reply-to is at-most-once anyway).
		exchange, mandatory = "", false
	}
	return c.publish(ctx, c.ctx.Done(), exchange, dest, mandatory, p)
}

// publish sends p to exchange with routing key key and waits for the
// broker's confirm, with the errors Publish documents. The wait ends early
// when abandon is closed (Publish: the Client closes); nil waits for the
// confirm, the connection's loss or ConfirmTimeout.
func (c *Client) publish(ctx context.Context, abandon <-chan struct{}, exchange, key string, mandatory bool, p amqp.Publishing) error {
	down, up := c.gate()
	if !up {
		return fmt.Errorf("%w: rabbitmq: publish to %q: connection down", brokers.ErrUnavailable, key)
	}
	p.MessageId = c.id + "." + strconv.FormatUint(c.seq.Add(1), 36)
	c.retMu.Lock()
	c.returned[p.MessageId] = false
	c.retMu.Unlock()
	defer func() {
		c.retMu.Lock()
		delete(c.returned, p.MessageId)
		c.retMu.Unlock()
	}()

	dc, err := c.ch.PublishWithDeferredConfirm(exchange, key, mandatory, false, p)
	if err != nil {
		return fmt.Errorf("%w: rabbitmq: publish to %q: %v", brokers.ErrUnavailable, key, err)
	}
	timer := time.NewTimer(c.cfg.ConfirmTimeout)
	defer timer.Stop()
	select {
	case <-dc.Done():
	case <-ctx.Done():
		return ctx.Err()
	case <-abandon:
		return fmt.Errorf("rabbitmq: publish to %q: %w", key, brokers.ErrClosed)
	case <-down:
		select {
		case <-dc.Done(): // confirmed just before the loss
		default:
			return fmt.Errorf("%w: rabbitmq: publish to %q: connection lost before the confirm", brokers.ErrUnavailable, key)
		}
	case <-timer.C:
		return fmt.Errorf("%w: rabbitmq: publish to %q: no confirm within %s", brokers.ErrUnavailable, key, c.cfg.ConfirmTimeout)
	}
	if !dc.Acked() {
		return fmt.Errorf("%w: rabbitmq: publish to %q: broker nacked", brokers.ErrUnavailable, key)
	}
	if c.awaitReturns(p.MessageId) {
		if exchange == "" {
			return fmt.Errorf("%w: rabbitmq: no queue %q", brokers.ErrUnroutable, key)
		}
		return fmt.Errorf("%w: rabbitmq: no queue bound to exchange %q with key %q", brokers.ErrUnroutable, exchange, key)
	}
	return nil
}

// publishing maps a message to AMQP: the envelope headers travel as AMQP
// headers, except correlation-id, content-type and reply-to, which travel as
// the properties correlation_id, content_type and reply_to (where AMQP
// clients look for them; decode turns them back into headers); the deadline
// becomes the per-message TTL (expiration), so a request nobody took in
// time expires in its queue. The key travels in keyHeader unless it is the
// correlation id (always, for envelope messages). Every header costs the
// broker and the clients a table entry to encode and parse at each hop: the
// duplicates cost 10-20% of the throughput at 64 in flight (BENCHMARKS.md).
func (c *Client) publishing(m brokers.Message) (amqp.Publishing, error) {
	h := make(amqp.Table, len(m.Headers))
	for k, v := range m.Headers {
		if v != "" && (k == envelope.CorrelationID || k == envelope.ContentType || k == envelope.ReplyTo) {
			continue
		}
		h[k] = fieldValue(v)
	}
	if m.Key != m.Headers[envelope.CorrelationID] {
		h[keyHeader] = m.Key
	}
	p := amqp.Publishing{
		Headers:       h,
		ContentType:   m.Headers[envelope.ContentType],
		CorrelationId: m.Headers[envelope.CorrelationID],
		ReplyTo:       m.Headers[envelope.ReplyTo],
		DeliveryMode:  amqp.Persistent,
		Body:          m.Body,
	}
	transient := c.cfg.TransientRequests
	if isReply(m) {
		transient = c.cfg.TransientReplies
	}
	if transient {
		p.DeliveryMode = amqp.Transient
	}
	if d := m.Headers[envelope.Deadline]; d != "" {
		if t, err := time.Parse(time.RFC3339Nano, d); err == nil {
			p.Expiration = expiration(time.Until(t))
		}
	}
	if p.ReplyTo != "" {
		rt, err := c.direct.replyTo(p.ReplyTo)
		if err != nil {
			return p, err
		}
		p.ReplyTo = rt
	}
	return p, nil
}

// fieldValue is the AMQP form of a header value: a value holding several
// (joined by "\n", see brokers.Message) travels as an AMQP array of them,
// as other AMQP clients send a repeated header; decode joins it again.
func fieldValue(v string) any {
	if !strings.Contains(v, "\n") {
		return v
	}
	parts := strings.Split(v, "\n")
	a := make([]any, len(parts))
	for i, p := range parts {
		a[i] = p
	}
	return a
}

// isReply reports whether m is a reply: envelope.Reply.Message always sets
// the status header, which no request carries.
func isReply(m brokers.Message) bool {
	_, ok := m.Headers[envelope.Status]
	return ok && m.Headers[envelope.ReplyTo] == ""
}

// expiration renders a remaining budget as an AMQP expiration: whole
// milliseconds, rounded up, at least 1 (0 would mean "now or never").
func expiration(d time.Duration) string {
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms < 1 {
		ms = 1
	}
	return strconv.FormatInt(int64(ms), 10)
}

// watchReturns records mandatory messages the broker returned. amqp091-go
// hands a basic.return to this goroutine before it processes the confirm
// that follows it (RabbitMQ sends the return first), so once a publish's
// confirm arrived, a return for it has been received here; awaitReturns
// makes sure it has also been recorded.
func (c *Client) watchReturns(returns <-chan amqp.Return) {
	defer c.bg.Done()
	defer close(c.retDone)
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				return
			}
			c.retMu.Lock()
			if _, pending := c.returned[r.MessageId]; pending {
				c.returned[r.MessageId] = true
			}
			c.retMu.Unlock()
		case <-c.barrier:
		case <-c.ctx.Done():
			return
		}
	}
}

// awaitReturns reports whether the message was returned. The send on the
// unbuffered barrier completes only when watchReturns is back in its select,
// that is after it finished recording any return it had received.
func (c *Client) awaitReturns(id string) bool {
	select {
	case c.barrier <- struct{}{}:
	case <-c.retDone:
	}
	c.retMu.Lock()
	defer c.retMu.Unlock()
	return c.returned[id]
}
