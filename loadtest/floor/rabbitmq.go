package floor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers/envelope"
)

// directReplyTo is RabbitMQ's pseudo-queue for direct reply-to: the broker
// returns a mandatory publish to it as NO_ROUTE although it delivers it.
const directReplyTo = "amq.rabbitmq.reply-to"

func dialRabbit(url, name string) (*amqp.Connection, error) {
	conn, err := amqp.DialConfig(url, amqp.Config{
		Dial:       amqp.DefaultDial(5 * time.Second),
		Properties: amqp.Table{"connection_name": name},
	})
	if err != nil {
		return nil, fmt.Errorf("floor: dial RabbitMQ: %w", err)
	}
	return conn, nil
}

// rabbitRequester is the naive gateway's RabbitMQ side, the RPC
// tutorial's client with publisher confirms: one connection; a channel in
// confirm mode whose mandatory publishes each handler waits to be
// confirmed; an exclusive, auto-delete, server-named reply queue consumed
// with auto-ack on a second channel.
type rabbitRequester struct {
	conn    *amqp.Connection
	pub     *amqp.Channel
	queue   string
	replyTo string
	mode    uint8
	bg      sync.WaitGroup // the reply consumer and the returns drain; they end with conn
}

func newRabbitRequester(cfg GatewayConfig, w *waiters) (_ *rabbitRequester, err error) {
	conn, err := dialRabbit(cfg.RabbitMQURL, "naive-gateway")
	if err != nil {
		return nil, err
	}
	r := &rabbitRequester{conn: conn, queue: cfg.Queue, mode: amqp.Transient}
	if cfg.Persistent {
		r.mode = amqp.Persistent
	}
	defer func() {
		if err != nil {
			_ = r.close()
		}
	}()
	if r.pub, err = conn.Channel(); err != nil {
		return nil, fmt.Errorf("floor: open a channel: %w", err)
	}
	if err := r.pub.Confirm(false); err != nil {
		return nil, fmt.Errorf("floor: confirm mode: %w", err)
	}
	returns := r.pub.NotifyReturn(make(chan amqp.Return, 64))
	sub, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("floor: open a channel: %w", err)
	}
	q, err := sub.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return nil, fmt.Errorf("floor: declare the reply queue: %w", err)
	}
	r.replyTo = q.Name
	replies, err := sub.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("floor: consume the reply queue: %w", err)
	}
	log := cfg.Logger.With("reply_queue", q.Name)
	r.bg.Go(func() {
		for d := range replies {
			id := d.CorrelationId
			if id == "" {
				id, _ = d.Headers[envelope.CorrelationID].(string)
			}
			if !w.deliver(id, reply{contentType: d.ContentType, body: d.Body}) {
				log.Debug("floor: reply nobody waits for", slog.String("correlation_id", id))
			}
		}
	})
	// A mandatory publish nobody could route comes back here (then its
	// confirm): the request waits out its timeout, as in the tutorial.
	r.bg.Go(func() {
		for ret := range returns {
			log.Warn("floor: request returned unroutable", slog.String("queue", ret.RoutingKey),
				slog.String("correlation_id", ret.CorrelationId), slog.String("reason", ret.ReplyText))
		}
	})
	return r, nil
}

func (r *rabbitRequester) send(ctx context.Context, id, contentType string, body []byte) error {
	dc, err := r.pub.PublishWithDeferredConfirmWithContext(ctx, "", r.queue, true, false, amqp.Publishing{
		ContentType: contentType, CorrelationId: id, ReplyTo: r.replyTo, DeliveryMode: r.mode, Body: body,
		// The syncgate contract's headers as well, for services that read
		// those rather than the properties.
		Headers: amqp.Table{envelope.CorrelationID: id, envelope.ReplyTo: r.replyTo},
	})
	if err != nil {
		return err
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("floor: request nacked by the broker")
	}
	return nil
}

// close closes the connection and waits for the consumers, which end
// with it.
func (r *rabbitRequester) close() error {
	err := r.conn.Close()
	r.bg.Wait()
	if errors.Is(err, amqp.ErrClosed) {
		err = nil
	}
	return err
}

// rabbitEcho is the naive echo service: one connection, a channel with
// prefetch cfg.Prefetch in confirm mode, and as many workers, each
// publishing a delivery's body to its reply_to queue through the default
// exchange (mandatory unless it is direct reply-to), waiting for the
// confirm, then acking the delivery. It declares the queue (durable, no
// arguments) only if it does not exist yet, so it consumes syncgate's
// quorum queue as it is.
func rabbitEcho(ctx context.Context, cfg EchoConfig) error {
	log := cfg.Logger.With("broker", RabbitMQ, "queue", cfg.Queue)
	conn, err := dialRabbit(cfg.RabbitMQURL, "naive-echo")
	if err != nil {
		return err
	}
	var workers sync.WaitGroup
	defer func() {
		_ = conn.Close() // ends the deliveries, the returns and the confirms waited for
		workers.Wait()
	}()
	if err := declareIfMissing(conn, cfg.Queue, cfg.QueueType); err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("floor: open a channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("floor: confirm mode: %w", err)
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, 64))
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	workers.Go(func() {
		for ret := range returns {
			log.Warn("floor: reply returned unroutable", slog.String("reply_to", ret.RoutingKey),
				slog.String("correlation_id", ret.CorrelationId), slog.String("reason", ret.ReplyText))
		}
	})
	if err := ch.Qos(cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("floor: prefetch: %w", err)
	}
	deliveries, err := ch.Consume(cfg.Queue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("floor: consume %s: %w", cfg.Queue, err)
	}
	for range cfg.Prefetch {
		workers.Go(func() {
			for d := range deliveries {
				echoDelivery(ctx, ch, d, log)
			}
		})
	}
	if cfg.Ready != nil {
		cfg.Ready()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-closed:
		return fmt.Errorf("floor: channel closed: %w", err)
	}
}

// echoDelivery answers d and acks it once the reply is confirmed; a reply
// that cannot be published leaves d unacked, for the broker to deliver
// again once the connection is gone.
func echoDelivery(ctx context.Context, ch *amqp.Channel, d amqp.Delivery, log *slog.Logger) {
	id, replyTo := d.CorrelationId, d.ReplyTo
	if id == "" {
		id, _ = d.Headers[envelope.CorrelationID].(string)
	}
	if replyTo == "" {
		replyTo, _ = d.Headers[envelope.ReplyTo].(string)
	}
	if id == "" || replyTo == "" {
		log.Warn("floor: request without correlation id or reply-to dropped")
		_ = d.Ack(false)
		return
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", replyTo, !strings.HasPrefix(replyTo, directReplyTo), false, amqp.Publishing{
		ContentType: d.ContentType, CorrelationId: id, DeliveryMode: d.DeliveryMode, Body: d.Body,
		Headers: amqp.Table{envelope.CorrelationID: id, envelope.Status: "200"},
	})
	if err != nil {
		return
	}
	if ok, err := dc.WaitContext(ctx); err != nil || !ok {
		return
	}
	_ = d.Ack(false)
}

// declareIfMissing declares queue (durable, of the given x-queue-type)
// unless it exists, on a channel of its own: a failed passive declaration
// closes its channel.
func declareIfMissing(conn *amqp.Connection, queue, queueType string) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("floor: open a channel: %w", err)
	}
	_, err = ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	var aerr *amqp.Error
	if err == nil || !errors.As(err, &aerr) || aerr.Code != amqp.NotFound {
		_ = ch.Close()
		if err != nil {
			return fmt.Errorf("floor: look up queue %s: %w", queue, err)
		}
		return nil
	}
	if ch, err = conn.Channel(); err != nil {
		return fmt.Errorf("floor: open a channel: %w", err)
	}
	defer ch.Close()
	var args amqp.Table
	if queueType == "quorum" {
		args = amqp.Table{"x-queue-type": "quorum"}
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, args); err != nil {
		return fmt.Errorf("floor: declare queue %s: %w", queue, err)
	}
	return nil
}
