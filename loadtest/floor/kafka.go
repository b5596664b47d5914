package floor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/syncgate/syncgate/brokers/envelope"
)

// closeWait is the Readers' MaxWait, how long a fetch waits for records
// (kafka-go's default is 10 s). A Reader's Close waits for the fetch in
// flight, so it is also how long a stopping floor can take.
const closeWait = 500 * time.Millisecond

// kafkaRequester is the naive gateway's Kafka side: one Writer for the
// requests (1 ms BatchTimeout, leader acks, a handler waits for its
// write) and one partition Reader on a reply topic of its own.
type kafkaRequester struct {
	w          *kafkago.Writer
	r          *kafkago.Reader
	brokers    []string
	replyTopic string
	cancel     context.CancelFunc
	done       chan struct{}
	log        *slog.Logger
}

// newKafkaRequester creates the reply topic naive.reply.<random> (one
// partition) and starts reading it. The Reader reads partition 0 without a
// consumer group from the topic's first offset (kafka-go's default for a
// partition Reader): the topic was just created empty, so that is its end,
// and unlike LastOffset, which kafka-go resolves at the first fetch, it
// misses no reply produced before that fetch.
func newKafkaRequester(ctx context.Context, cfg GatewayConfig, w *waiters) (*kafkaRequester, error) {
	topic := "naive.reply." + randomSuffix()
	if err := createTopic(ctx, cfg.KafkaBrokers[0], topic); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	k := &kafkaRequester{
		w: &kafkago.Writer{
			Addr: kafkago.TCP(cfg.KafkaBrokers...), Topic: cfg.Topic,
			BatchTimeout: time.Millisecond, RequiredAcks: kafkago.RequireOne,
		},
		r: kafkago.NewReader(kafkago.ReaderConfig{
			Brokers: cfg.KafkaBrokers, Topic: topic, Partition: 0, MaxWait: closeWait,
		}),
		brokers: cfg.KafkaBrokers, replyTopic: topic,
		cancel: cancel, done: make(chan struct{}), log: cfg.Logger.With("reply_topic", topic),
	}
	go k.consume(rctx, w)
	return k, nil
}

// consume hands each reply to its waiter until ctx ends.
func (k *kafkaRequester) consume(ctx context.Context, w *waiters) {
	defer close(k.done)
	for {
		m, err := k.r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() == nil {
				k.log.Error("floor: reading replies stopped", slog.Any("error", err))
			}
			return
		}
		id := header(m.Headers, envelope.CorrelationID)
		if !w.deliver(id, reply{contentType: header(m.Headers, envelope.ContentType), body: m.Value}) {
			k.log.Debug("floor: reply nobody waits for", slog.String("correlation_id", id))
		}
	}
}

func (k *kafkaRequester) send(ctx context.Context, id, contentType string, body []byte) error {
	hs := []kafkago.Header{
		{Key: envelope.CorrelationID, Value: []byte(id)},
		{Key: envelope.ReplyTo, Value: []byte(k.replyTopic)},
	}
	if contentType != "" {
		hs = append(hs, kafkago.Header{Key: envelope.ContentType, Value: []byte(contentType)})
	}
	return k.w.WriteMessages(ctx, kafkago.Message{Headers: hs, Value: body})
}

// close stops the reader and the writer and deletes the reply topic.
func (k *kafkaRequester) close() error {
	k.cancel()
	err := k.r.Close()
	<-k.done
	err = errors.Join(err, k.w.Close())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(err, deleteTopic(ctx, k.brokers[0], k.replyTopic))
}

// controller dials the cluster's controller through broker.
func controller(ctx context.Context, broker string) (*kafkago.Conn, error) {
	conn, err := kafkago.DialContext(ctx, "tcp", broker)
	if err != nil {
		return nil, fmt.Errorf("floor: dial %s: %w", broker, err)
	}
	defer conn.Close()
	c, err := conn.Controller()
	if err != nil {
		return nil, fmt.Errorf("floor: find the controller: %w", err)
	}
	cc, err := kafkago.DialContext(ctx, "tcp", net.JoinHostPort(c.Host, strconv.Itoa(c.Port)))
	if err != nil {
		return nil, fmt.Errorf("floor: dial the controller: %w", err)
	}
	return cc, nil
}

func createTopic(ctx context.Context, broker, topic string) error {
	cc, err := controller(ctx, broker)
	if err != nil {
		return err
	}
	defer cc.Close()
	if err := cc.CreateTopics(kafkago.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}); err != nil {
		return fmt.Errorf("floor: create topic %s: %w", topic, err)
	}
	return nil
}

func deleteTopic(ctx context.Context, broker, topic string) error {
	cc, err := controller(ctx, broker)
	if err != nil {
		return err
	}
	defer cc.Close()
	if err := cc.DeleteTopics(topic); err != nil {
		return fmt.Errorf("floor: delete topic %s: %w", topic, err)
	}
	return nil
}

// kafkaEcho is the naive echo service: a Reader in a consumer group
// (offsets committed every second) and an async Writer (1 ms BatchTimeout,
// leader acks) that writes each request's body to its reply-to topic.
func kafkaEcho(ctx context.Context, cfg EchoConfig) error {
	log := cfg.Logger.With("broker", Kafka, "topic", cfg.Topic, "group", cfg.Group)
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: cfg.KafkaBrokers, GroupID: cfg.Group, Topic: cfg.Topic, CommitInterval: time.Second,
		MaxWait: closeWait,
	})
	w := &kafkago.Writer{
		Addr: kafkago.TCP(cfg.KafkaBrokers...), Async: true,
		BatchTimeout: time.Millisecond, RequiredAcks: kafkago.RequireOne,
		Completion: func(msgs []kafkago.Message, err error) {
			if err != nil {
				log.Warn("floor: replies lost", slog.Int("replies", len(msgs)), slog.Any("error", err))
			}
		},
	}
	wctx, stopWatch := context.WithCancel(ctx)
	var watch sync.WaitGroup
	watch.Go(func() { awaitJoin(wctx, r, cfg.Ready) })
	err := echoRecords(ctx, r, w, log)
	stopWatch()
	watch.Wait()
	return errors.Join(err, r.Close(), w.Close())
}

// awaitJoin calls ready (if set) once r has joined its group, that is once
// its stats count a rebalance, checking every 10 ms until ctx ends.
// (Stats counters reset on every call, hence the sum.)
func awaitJoin(ctx context.Context, r *kafkago.Reader, ready func()) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	var rebalances int64
	for rebalances == 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rebalances += r.Stats().Rebalances
		}
	}
	if ready != nil {
		ready()
	}
}

func echoRecords(ctx context.Context, r *kafkago.Reader, w *kafkago.Writer, log *slog.Logger) error {
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("floor: read requests: %w", err)
		}
		id, replyTo := header(m.Headers, envelope.CorrelationID), header(m.Headers, envelope.ReplyTo)
		if id == "" || replyTo == "" {
			log.Warn("floor: request without correlation-id or reply-to dropped", slog.Int64("offset", m.Offset))
			continue
		}
		hs := []kafkago.Header{
			{Key: envelope.CorrelationID, Value: []byte(id)},
			{Key: envelope.Status, Value: []byte("200")},
		}
		if ct := header(m.Headers, envelope.ContentType); ct != "" {
			hs = append(hs, kafkago.Header{Key: envelope.ContentType, Value: []byte(ct)})
		}
		// Async: returns at once; errors go to the Writer's Completion.
		if err := w.WriteMessages(ctx, kafkago.Message{Topic: replyTo, Headers: hs, Value: m.Value}); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("floor: write a reply: %w", err)
		}
	}
}

func header(hs []kafkago.Header, key string) string {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
