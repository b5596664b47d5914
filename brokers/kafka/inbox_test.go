package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
)

// reply returns an envelope reply message for a fresh correlation id.
func reply(t testing.TB, body string) (string, brokers.Message) {
	t.Helper()
	id := uuid.NewString()
	return id, envelope.Reply{CorrelationID: id, Body: []byte(body)}.Message()
}

// collectIDs is an inbox handler sending the correlation id of each reply.
func collectIDs(ch chan<- string) brokers.Handler {
	return func(ctx context.Context, m brokers.Message) error {
		select {
		case ch <- m.Headers[envelope.CorrelationID]:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// TestInboxNoReplyLost proves the reply inbox loses no reply around its
// start: one produced before the consumer existed, one produced from inside
// the Ready callback (the first moment the gateway may send requests), and
// one produced while the node was stopped are each delivered, and a
// restarted node does not see again what it already handled.
func TestInboxNoReplyLost(t *testing.T) {
	c := newCluster(t)
	cfg := c.config()
	pub := c.publisher(t, cfg)

	for _, tc := range []struct {
		name     string
		preexist bool // the topic exists before the first Subscribe (a node restarting)
	}{
		{"topic created by Subscribe", false},
		{"existing topic", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := fmt.Sprintf("syncgate.reply.node-%s", uuid.NewString())
			var early string
			if tc.preexist {
				topic = c.topic(t, "syncgate.reply.node", 4)
				var m brokers.Message
				early, m = reply(t, "produced before the consumer existed")
				if err := pub.Publish(publishCtx(t), topic, m); err != nil {
					t.Fatal(err)
				}
			}

			got := make(chan string, 16)
			atReady, atReadyMsg := reply(t, "produced from the Ready callback")
			readyErr := make(chan error, 1)
			sub := c.subscriber(t, cfg)
			s := subscribe(t, sub, topic, collectIDs(got), brokers.AsInbox(), brokers.WithConcurrency(4),
				brokers.WithReady(func() { readyErr <- pub.Publish(context.Background(), topic, atReadyMsg) }))
			if err := recv(t, readyErr, "publish from Ready"); err != nil {
				t.Fatalf("publish to the inbox from its Ready callback: %v", err)
			}
			want := map[string]bool{atReady: true}
			if early != "" {
				want[early] = true
			}
			for len(want) > 0 {
				id := recv(t, got, "reply")
				if !want[id] {
					t.Fatalf("unexpected or duplicate reply %s", id)
				}
				delete(want, id)
			}

			// The node stops (its offsets are committed), a reply arrives
			// meanwhile, the node starts again: it gets that reply only.
			s.stop(t)
			sub.Close()
			during, m := reply(t, "produced while the node was down")
			if err := pub.Publish(publishCtx(t), topic, m); err != nil {
				t.Fatal(err)
			}
			got2 := make(chan string, 16)
			subscribe(t, c.subscriber(t, cfg), topic, collectIDs(got2), brokers.AsInbox())
			if id := recv(t, got2, "reply after restart"); id != during {
				t.Fatalf("after restart got reply %s, want %s (the one produced while down)", id, during)
			}
			after, m := reply(t, "produced after the restart")
			if err := pub.Publish(publishCtx(t), topic, m); err != nil {
				t.Fatal(err)
			}
			if id := recv(t, got2, "reply"); id != after {
				t.Fatalf("got reply %s, want %s: a handled reply was delivered again", id, after)
			}
		})
	}
}

// TestInboxSurvivesGarbage: records any client can produce on a reply topic
// (no headers, a malformed correlation id, a record far larger than the
// fetch size, empty key and value, duplicate and binary headers) reach the
// handler, which decides (the gateway counts and drops them); the consumer
// goes on to the valid reply behind them on the same partition.
func TestInboxSurvivesGarbage(t *testing.T) {
	c := newCluster(t)
	cfg := c.config()
	cfg.MaxMessageBytes = 64 << 10 // fetch size: the huge record is 48 times larger
	topic := c.topic(t, "syncgate.reply.garbage", 2)

	var invalid atomic.Int32
	valid := make(chan string, 4)
	sizes := make(chan int, 16)
	handler := func(ctx context.Context, m brokers.Message) error {
		sizes <- len(m.Body)
		r, err := envelope.DecodeReply(m)
		if err != nil {
			invalid.Add(1) // what the gateway does: count, log, drop
			return nil
		}
		valid <- r.CorrelationID
		return nil
	}
	subscribe(t, c.subscriber(t, cfg), topic, handler, brokers.AsInbox(), brokers.WithConcurrency(2))

	huge := bytes.Repeat([]byte("0123456789abcdef"), (3<<20)/16)
	key := []byte("same-partition")
	garbage := []kafkago.Message{
		{Key: key, Value: []byte("no headers at all")},
		{Key: key, Value: []byte("bad id"), Headers: []kafkago.Header{{Key: envelope.CorrelationID, Value: []byte("not-a-uuid")}}},
		{Key: key, Value: huge, Headers: []kafkago.Header{{Key: envelope.CorrelationID, Value: []byte(uuid.NewString())}, {Key: envelope.Status, Value: []byte("999")}}},
		{Key: key},
		{Key: key, Value: []byte{0xff, 0x00}, Headers: []kafkago.Header{
			{Key: envelope.CorrelationID, Value: []byte{0xff, 0xfe, 0x00}},
			{Key: envelope.CorrelationID, Value: nil},
			{Key: "", Value: []byte("nameless")},
		}},
	}
	id := uuid.NewString()
	ok := kafkago.Message{Key: key, Value: []byte("fine"), Headers: []kafkago.Header{{Key: envelope.CorrelationID, Value: []byte(id)}}}
	w := c.rawWriter(t)
	for _, m := range append(garbage, ok) {
		m.Topic = topic
		if err := w.WriteMessages(publishCtx(t), m); err != nil {
			t.Fatalf("raw produce: %v", err)
		}
	}
	if got := recv(t, valid, "valid reply behind the garbage"); got != id {
		t.Fatalf("valid reply %s, want %s", got, id)
	}
	if n := invalid.Load(); n != int32(len(garbage)) {
		t.Fatalf("handler saw %d invalid records, want %d", n, len(garbage))
	}
	sawHuge := false
	for range len(garbage) + 1 {
		if recv(t, sizes, "record size") == len(huge) {
			sawHuge = true
		}
	}
	if !sawHuge {
		t.Fatal("the huge record did not reach the handler whole")
	}

	// And the consumer keeps going.
	id2, m := reply(t, "after the garbage")
	if err := c.publisher(t, c.config()).Publish(publishCtx(t), topic, m); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, valid, "reply after the garbage"); got != id2 {
		t.Fatalf("reply %s, want %s", got, id2)
	}
}

// TestInboxRetriesFailedHandler: an inbox handler error redelivers the reply
// (same as a service subscription) until the handler takes it.
func TestInboxRetriesFailedHandler(t *testing.T) {
	c := newCluster(t)
	cfg := c.config()
	cfg.RetryBackoffMin = 1e6 // 1ms: the test needs no real backoff
	topic := fmt.Sprintf("syncgate.reply.retry-%s", uuid.NewString())
	var calls atomic.Int32
	got := make(chan string, 1)
	subscribe(t, c.subscriber(t, cfg), topic, func(ctx context.Context, m brokers.Message) error {
		if calls.Add(1) < 3 {
			return errors.New("not yet")
		}
		got <- m.Headers[envelope.CorrelationID]
		return nil
	}, brokers.AsInbox())
	id, m := reply(t, "retried")
	if err := c.publisher(t, cfg).Publish(publishCtx(t), topic, m); err != nil {
		t.Fatal(err)
	}
	if g := recv(t, got, "reply after two failures"); g != id || calls.Load() != 3 {
		t.Fatalf("got %s after %d calls, want %s after 3", g, calls.Load(), id)
	}
}
