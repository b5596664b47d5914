package rabbitmq

import (
	"context"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers"
)

// directInbox is the reply inbox in direct reply-to mode: a no-ack consumer
// of amq.rabbitmq.reply-to on the publishing channel. Requests whose
// reply-to names the inbox are published with reply_to
// amq.rabbitmq.reply-to, which the broker rewrites into an address that
// reaches this consumer.
type directInbox struct {
	mu     sync.Mutex
	name   string
	active bool
}

func (d *directInbox) replyTo(rt string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.name == "" || rt != d.name {
		return rt, nil
	}
	if !d.active {
		return "", fmt.Errorf("%w: rabbitmq: direct reply-to inbox %q is not consuming", brokers.ErrUnavailable, rt)
	}
	return directReplyTo, nil
}

// subscribeDirect consumes direct replies. The consumer lives on the
// publishing channel, so amqp091-go's topology recovery re-subscribes it
// after a reconnection (safe here: no-ack deliveries carry no tag to ack).
// Replies in flight during a loss are lost: at-most-once.
func (c *Client) subscribeDirect(ctx context.Context, source string, h brokers.Handler, sc brokers.SubscribeConfig) error {
	c.direct.mu.Lock()
	if c.direct.name != "" {
		c.direct.mu.Unlock()
		return fmt.Errorf("rabbitmq: subscribe %q: a direct reply-to inbox %q is already subscribed on this client", source, c.direct.name)
	}
	c.direct.name = source
	c.direct.mu.Unlock()
	defer func() {
		c.direct.mu.Lock()
		c.direct.name, c.direct.active = "", false
		c.direct.mu.Unlock()
	}()

	tag := "syncgate." + c.id + ".direct." + strconv.FormatUint(tagSeq.Add(1), 36)
	c.rpcMu.Lock()
	deliveries, err := c.ch.Consume(directReplyTo, tag, true, false, false, false, nil)
	c.rpcMu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: rabbitmq: consume %s: %v", brokers.ErrUnavailable, directReplyTo, err)
	}
	defer func() {
		// Only on an open channel: a call during the library's reopen could
		// interleave with its handshake. Otherwise Close's connection close
		// ends the consumer.
		if c.Ready() {
			c.rpcMu.Lock()
			_ = c.ch.Cancel(tag, false)
			c.rpcMu.Unlock()
		}
	}()
	c.direct.mu.Lock()
	c.direct.active = true
	c.direct.mu.Unlock()
	sc.Ready()

	// As a reply queue does (see subscription.run): the messages of one
	// correlation id go to one worker, in order.
	work := make([]chan amqp.Delivery, max(sc.Concurrency, 1))
	seed := maphash.MakeSeed()
	var workers sync.WaitGroup
	for i := range work {
		work[i] = make(chan amqp.Delivery)
		workers.Go(func() {
			for d := range work[i] {
				_ = call(ctx, h, decodeLogged(c.log, d))
			}
		})
	}
	defer workers.Wait()
	defer func() {
		for _, w := range work {
			close(w)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-deliveries:
			if !ok {
				return fmt.Errorf("%w: rabbitmq: direct reply-to consumer closed", brokers.ErrUnavailable)
			}
			select {
			case work[lane(seed, d, len(work))] <- d:
			case <-ctx.Done():
				return nil
			}
		}
	}
}
