package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/syncgate/syncgate/brokers"
)

var errPoison = errors.New("poison: cannot handle this request")

// TestDeadLetterRecord: a record whose handler fails max_deliveries times
// goes to <topic>.dlt with its key, value and headers (repeated and binary
// ones as they were) followed by Spring Kafka's dead-letter headers and the
// attempt count; the DeadLetter callback gets it once; its offset is
// committed, so a new member of the group does not see it again.
func TestDeadLetterRecord(t *testing.T) {
	c := newCluster(t)
	cfg := c.config()
	cfg.MaxDeliveries = 3
	cfg.RetryBackoffMin, cfg.RetryBackoffMax = time.Millisecond, 10*time.Millisecond
	topic := c.topic(t, "svc.poison", 4)
	group := "svc.poison." + t.Name()

	type letter struct {
		m   brokers.Message
		err error
	}
	letters := make(chan letter, 4)
	handled := make(chan string, 4)
	var attempts atomic.Int32
	handler := func(ctx context.Context, m brokers.Message) error {
		if string(m.Body) == "bad body" {
			attempts.Add(1)
			return errPoison
		}
		handled <- m.Key
		return nil
	}
	s := subscribe(t, c.subscriber(t, cfg), topic, handler, brokers.WithGroup(group),
		brokers.WithDeadLetter(func(_ context.Context, m brokers.Message, err error) { letters <- letter{m.Clone(), err} }))

	headers := []kafkago.Header{
		{Key: "x-a", Value: []byte("one")},
		{Key: "x-bin", Value: []byte{0x00, 0x0a, 0xff}},
		{Key: "x-a", Value: []byte("two")},
	}
	w := c.rawWriter(t)
	poison := kafkago.Message{Topic: topic, Key: []byte("poison"), Value: []byte("bad body"), Headers: headers}
	if err := w.WriteMessages(publishCtx(t), poison, kafkago.Message{Topic: topic, Key: []byte("poison"), Value: []byte("next")}); err != nil {
		t.Fatal(err)
	}
	dl := recv(t, letters, "DeadLetter call")
	if !errors.Is(dl.err, errPoison) || string(dl.m.Body) != "bad body" || dl.m.Headers["x-a"] != "one\ntwo" {
		t.Fatalf("DeadLetter got %+v, %v", dl.m, dl.err)
	}
	if n := attempts.Load(); n != 3 {
		t.Errorf("handler called %d times, want max_deliveries = 3", n)
	}

	// Read the dead letter back.
	dlt := topic + ".dlt"
	partition := kafkago.Murmur2Balancer{}.Balance(kafkago.Message{Key: []byte("poison")}, 0, 1, 2, 3)
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: c.brokers, Topic: dlt, Partition: partition, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	got, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("read %s partition %d: %v", dlt, partition, err)
	}
	if string(got.Key) != "poison" || string(got.Value) != "bad body" {
		t.Errorf("dead letter key %q value %q", got.Key, got.Value)
	}
	if len(got.Headers) < len(headers) || !slices.EqualFunc(got.Headers[:len(headers)], headers, func(a, b kafkago.Header) bool {
		return a.Key == b.Key && string(a.Value) == string(b.Value)
	}) {
		t.Errorf("dead letter does not start with the original headers in order: %v", got.Headers)
	}
	dlh := map[string][]byte{}
	for _, h := range got.Headers[len(headers):] {
		dlh[h.Key] = h.Value
	}
	want := map[string][]byte{
		HeaderDLTOriginalTopic:         []byte(topic),
		HeaderDLTOriginalPartition:     binary.BigEndian.AppendUint32(nil, uint32(partition)),
		HeaderDLTOriginalOffset:        binary.BigEndian.AppendUint64(nil, 0),
		HeaderDLTOriginalConsumerGroup: []byte(group),
		HeaderDLTExceptionFQCN:         []byte("*errors.errorString"),
		HeaderDLTExceptionMessage:      []byte(errPoison.Error()),
		HeaderDLTAttempts:              []byte("3"),
		HeaderDLTOriginalTimestampType: []byte("CreateTime"),
	}
	for k, v := range want {
		if string(dlh[k]) != string(v) {
			t.Errorf("dead letter header %s = %q, want %q", k, dlh[k], v)
		}
	}
	if ts := dlh[HeaderDLTOriginalTimestamp]; len(ts) != 8 || time.Since(time.UnixMilli(int64(binary.BigEndian.Uint64(ts)))) > time.Minute {
		t.Errorf("dead letter header %s = %x, want the record's time as big-endian int64 milliseconds", HeaderDLTOriginalTimestamp, ts)
	}

	// The partition moved on, and the poison record's offset is committed:
	// the next member of the group starts after it.
	if k := recv(t, handled, "the record behind the poison one"); k != "poison" {
		t.Fatalf("handled %q", k)
	}
	s.stop(t)
	subscribe(t, c.subscriber(t, cfg), topic, handler, brokers.WithGroup(group))
	if err := w.WriteMessages(publishCtx(t), kafkago.Message{Topic: topic, Key: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	if k := recv(t, handled, "a record after the restart"); k != "after" {
		t.Fatalf("after the restart %q was handled again", k)
	}
	if n := attempts.Load(); n != 3 {
		t.Errorf("the dead-lettered record was handled again after the restart (%d attempts)", n)
	}
}

// TestDeadLetterNeverDropped: while the dead-letter topic cannot be
// written the record is neither dropped nor committed: its key waits, the
// DeadLetter callback is not called, and the next member of the group
// receives the record again.
func TestDeadLetterNeverDropped(t *testing.T) {
	if os.Getenv(brokersEnv) != "" {
		t.Skip("injects produce errors: kfake only")
	}
	c := newFake(t)
	cfg := c.config()
	cfg.MaxDeliveries = 2
	cfg.RetryBackoffMin, cfg.RetryBackoffMax = time.Millisecond, 50*time.Millisecond
	topic := c.topic(t, "svc.poison-stuck", 4)
	group := "svc.poison-stuck"

	// Every produce to the dead-letter topic fails (not enough replicas)
	// until the test lifts it.
	var refuse atomic.Bool
	refuse.Store(true)
	c.fake.ControlKey(kmsg.Produce.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.fake.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		if !refuse.Load() || len(pr.Topics) != 1 || pr.Topics[0].Topic != DeadLetterTopic(cfg, topic) {
			return nil, nil, false
		}
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = pr.Topics[0].Topic
		for _, p := range pr.Topics[0].Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = int16(kafkago.NotEnoughReplicas)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
		return resp, nil, true
	})
	failed := make(chan struct{}, 16)
	letters := make(chan struct{}, 4)
	s := subscribe(t, c.subscriber(t, cfg), topic, func(ctx context.Context, m brokers.Message) error {
		failed <- struct{}{}
		return errPoison
	}, brokers.WithGroup(group), brokers.WithDeadLetter(func(context.Context, brokers.Message, error) { letters <- struct{}{} }))
	if err := c.publisher(t, cfg).Publish(publishCtx(t), topic, brokers.Message{Key: "stuck", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	recv(t, failed, "first attempt")
	recv(t, failed, "second attempt")
	select {
	case <-letters:
		t.Fatal("DeadLetter called although the dead letter could not be written")
	case <-failed:
		t.Fatal("a third attempt after max_deliveries = 2")
	case <-time.After(2 * time.Second): // several dead-letter retries
	}
	s.stop(t)
	refuse.Store(false)

	got := make(chan string, 1)
	subscribe(t, c.subscriber(t, cfg), topic, func(ctx context.Context, m brokers.Message) error {
		got <- string(m.Body)
		return nil
	}, brokers.WithGroup(group))
	if b := recv(t, got, "the record not dead-lettered, again"); b != "x" {
		t.Fatalf("got %q", b)
	}
}

// TestNoDeadLetterOnShutdown: a handler that fails because its
// subscription is stopping (its context ended) has not failed on the
// record: that attempt does not count, nothing is dead-lettered, and the
// next member receives the record.
func TestNoDeadLetterOnShutdown(t *testing.T) {
	c := newCluster(t)
	cfg := c.config()
	cfg.MaxDeliveries = 2
	cfg.RetryBackoffMin, cfg.RetryBackoffMax = time.Millisecond, 10*time.Millisecond
	topic := c.topic(t, "svc.poison-shutdown", 4)
	group := "svc.poison-shutdown"
	var attempts atomic.Int32
	holding := make(chan struct{})
	letters := make(chan struct{}, 4)
	s := subscribe(t, c.subscriber(t, cfg), topic, func(ctx context.Context, m brokers.Message) error {
		if attempts.Add(1) == 1 {
			return errPoison
		}
		close(holding)
		<-ctx.Done() // the last allowed attempt, cut short by the shutdown
		return ctx.Err()
	}, brokers.WithGroup(group), brokers.WithDeadLetter(func(context.Context, brokers.Message, error) { letters <- struct{}{} }))
	if err := c.publisher(t, cfg).Publish(publishCtx(t), topic, brokers.Message{Key: "k", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	recv(t, holding, "second attempt")
	s.stop(t)
	select {
	case <-letters:
		t.Fatal("dead-lettered because the subscription stopped")
	default:
	}
	got := make(chan string, 1)
	subscribe(t, c.subscriber(t, cfg), topic, func(ctx context.Context, m brokers.Message) error {
		got <- string(m.Body)
		return nil
	}, brokers.WithGroup(group))
	if b := recv(t, got, "the record, redelivered"); b != "x" {
		t.Fatalf("got %q", b)
	}
}
