package kafka

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/syncgate/syncgate/brokers"
)

// TestPublishUnknownTopic: with auto-creation off a publish to a missing
// topic fails with ErrUnroutable, at once, and creates nothing.
func TestPublishUnknownTopic(t *testing.T) {
	c := newCluster(t)
	pub := c.publisher(t, c.config())
	for range 2 { // the second one is answered from the "missing" memo
		err := pub.Publish(publishCtx(t), "no.such.topic.7f3a", brokers.Message{Key: "k", Body: []byte("x")})
		if !errors.Is(err, brokers.ErrUnroutable) {
			t.Fatalf("Publish to a missing topic: %v, want ErrUnroutable", err)
		}
	}
	cfg, sec, _ := c.config().prepare()
	if ok, err := topicExists(context.Background(), &cfg, sec, "no.such.topic.7f3a"); err != nil || ok {
		t.Fatalf("topic exists after the failed publish: %v, %v", ok, err)
	}
}

// TestPublishTopicCreatedMeanwhile: a topic created after the publisher
// cached the cluster's metadata is published to at once, not after the
// cache expires.
func TestPublishTopicCreatedMeanwhile(t *testing.T) {
	c := newCluster(t)
	cfg := c.config()
	cfg.MetadataTTL = 1 << 40 // never refreshes by itself during the test
	pub := c.publisher(t, cfg)
	first := c.topic(t, "first", 1)
	if err := pub.Publish(publishCtx(t), first, brokers.Message{Body: []byte("warm the cache")}); err != nil {
		t.Fatal(err)
	}
	later := c.topic(t, "later", 1)
	if err := pub.Publish(publishCtx(t), later, brokers.Message{Body: []byte("x")}); err != nil {
		t.Fatalf("Publish to a topic created after the metadata was cached: %v", err)
	}
}

// TestPublishAutoCreate: with AutoCreateTopics (and a broker that allows
// it) a publish creates the topic.
func TestPublishAutoCreate(t *testing.T) {
	c := newFake(t, kfake.AllowAutoTopicCreation())
	cfg := c.config()
	cfg.AutoCreateTopics = true
	got := make(chan brokers.Message, 1)
	// Subscribe creates it too (with cfg.Partitions) when auto-creation is on.
	subscribe(t, c.subscriber(t, cfg), "auto.created", func(ctx context.Context, m brokers.Message) error {
		got <- m
		return nil
	})
	if err := c.publisher(t, cfg).Publish(publishCtx(t), "auto.created", brokers.Message{Key: "k", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	recv(t, got, "delivery")
	if err := c.publisher(t, cfg).Publish(publishCtx(t), "auto.created.by.publish", brokers.Message{Body: []byte("x")}); err != nil {
		t.Fatalf("Publish with auto-creation: %v", err)
	}
}

// TestSubscribeUnknownTopic: a service subscription on a missing topic is a
// configuration error, returned at once.
func TestSubscribeUnknownTopic(t *testing.T) {
	c := newCluster(t)
	sub := c.subscriber(t, c.config())
	err := sub.Subscribe(publishCtx(t), "no.such.topic.9c1e", func(context.Context, brokers.Message) error { return nil })
	if !errors.Is(err, brokers.ErrUnroutable) {
		t.Fatalf("Subscribe to a missing topic: %v, want ErrUnroutable", err)
	}
}

// TestPublishAcksAllAndTooLarge: acks "all" publishes; a record over
// MaxMessageBytes fails with ErrMessageTooLarge without reaching the broker.
func TestPublishAcksAllAndTooLarge(t *testing.T) {
	c := newCluster(t)
	cfg := c.config()
	cfg.Acks = AcksAll
	cfg.MaxMessageBytes = 1 << 10
	pub := c.publisher(t, cfg)
	topic := c.topic(t, "acks", 1)
	if err := pub.Publish(publishCtx(t), topic, brokers.Message{Body: []byte("small")}); err != nil {
		t.Fatalf("acks all: %v", err)
	}
	err := pub.Publish(publishCtx(t), topic, brokers.Message{Body: bytes.Repeat([]byte("x"), 2<<10)})
	if !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("2 KiB record with max_message_bytes 1 KiB: %v, want ErrMessageTooLarge", err)
	}
}

// TestPublishRefusedByBroker: a record the topic refuses (its
// max.message.bytes is smaller than ours) fails with ErrMessageTooLarge, not
// as an outage.
func TestPublishRefusedByBroker(t *testing.T) {
	if os.Getenv(brokersEnv) != "" {
		t.Skip("relies on kfake's size check")
	}
	c := newCluster(t)
	small := c.config()
	small.MaxMessageBytes = 1 << 10 // the topic takes 1 KiB + batchOverhead
	small, sec, err := small.prepare()
	if err != nil {
		t.Fatal(err)
	}
	a := newAdmin(&small, sec, "small.records")
	defer a.close()
	if err := a.createTopic(publishCtx(t), "small.records", 1, 0); err != nil {
		t.Fatal(err)
	}
	err = c.publisher(t, c.config()).Publish(publishCtx(t), "small.records", brokers.Message{Body: bytes.Repeat([]byte("x"), 64<<10)})
	if !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("64 KiB record on a topic taking 17 KiB: %v, want ErrMessageTooLarge", err)
	}
}

// TestPublishBatchesWhenBrokerSlow: with every produce request taking 5ms
// on the broker, 1 000 concurrent publishes share few produce requests (the
// records published while one is in flight go together in the next) and all
// finish quickly; a publish to an idle partition is sent at once.
func TestPublishBatchesWhenBrokerSlow(t *testing.T) {
	if os.Getenv(brokersEnv) != "" {
		t.Skip("slows kfake down: kfake only")
	}
	c := newCluster(t)
	topic := c.topic(t, "slow.broker", 4)
	var produces atomic.Int32
	c.fake.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		produces.Add(1)
		time.Sleep(5 * time.Millisecond) // a slow broker, not a synchronisation
		return nil, nil, false
	})
	pub := c.publisher(t, c.config())
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			errs <- pub.Publish(publishCtx(t), topic, brokers.Message{Key: strconv.Itoa(i), Body: []byte("x")})
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if p := produces.Load(); p > n/10 {
		t.Fatalf("%d publishes took %d produce requests: not batched", n, p)
	}
	t.Logf("%d concurrent publishes: %d produce requests, %v", n, produces.Load(), took.Round(time.Millisecond))
}

// TestRepeatedHeaders: two record headers with one key reach the handler
// as one value, in record order, joined by "\n"; a published value of
// several lines becomes one record header per line, in order.
func TestRepeatedHeaders(t *testing.T) {
	c := newCluster(t)
	cfg := c.config()
	topic := c.topic(t, "svc.headers", 1)
	got := make(chan brokers.Message, 4)
	subscribe(t, c.subscriber(t, cfg), topic, func(ctx context.Context, m brokers.Message) error {
		got <- m
		return nil
	})

	// In: a record from any client.
	w := c.rawWriter(t)
	if err := w.WriteMessages(publishCtx(t), kafkago.Message{Topic: topic, Key: []byte("in"), Headers: []kafkago.Header{
		{Key: "x-multi", Value: []byte("b=2")}, {Key: "x-single", Value: []byte("s")}, {Key: "x-multi", Value: []byte("a=1")},
	}}); err != nil {
		t.Fatal(err)
	}
	m := recv(t, got, "record with a repeated header")
	if m.Headers["x-multi"] != "b=2\na=1" || m.Headers["x-single"] != "s" {
		t.Fatalf("headers %q, want x-multi %q and x-single %q", m.Headers, "b=2\na=1", "s")
	}

	// Out: Publish splits the lines again; read the record raw.
	if err := c.publisher(t, cfg).Publish(publishCtx(t), topic, brokers.Message{Key: "out", Headers: map[string]string{
		"x-multi": "z=26\ny=25\nx=24", "x-single": "s",
	}}); err != nil {
		t.Fatal(err)
	}
	recv(t, got, "the published record")
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: c.brokers, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	km, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var multi []string
	for _, h := range km.Headers {
		if h.Key == "x-multi" {
			multi = append(multi, string(h.Value))
		}
	}
	if want := []string{"z=26", "y=25", "x=24"}; !slices.Equal(multi, want) {
		t.Fatalf("record headers x-multi %q, want %q (one per line, in order); all: %v", multi, want, km.Headers)
	}
}
