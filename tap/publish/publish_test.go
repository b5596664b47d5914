package publish_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/memory"
	"github.com/syncgate/syncgate/tap"
	"github.com/syncgate/syncgate/tap/publish"
)

// Every exchange of a batch becomes one message on the destination,
// keyed by its correlation id, marked as a tap's, its body the exchange's
// JSON; a destination nobody can take fails the batch.
func TestPublishSink(t *testing.T) {
	b := memory.New(memory.Config{})
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	got := map[string]brokers.Message{}
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- b.Subscribe(ctx, "audit", func(_ context.Context, m brokers.Message) error {
			mu.Lock()
			got[m.Key] = m
			mu.Unlock()
			return nil
		}, brokers.WithReady(func() { close(ready) }))
	}()
	<-ready
	s, err := publish.New(publish.Config{Publisher: b, Destination: "audit"})
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]tap.Exchange, 50)
	for i := range batch {
		batch[i] = tap.Exchange{CorrelationID: "id-" + strconv.Itoa(i), Route: "orders", Status: 200, Outcome: "reply",
			Request: tap.Request{Method: "POST", Path: "/orders", Body: []byte{byte(i)}}}
	}
	if err := s.Write(ctx, batch); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == len(batch) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // the subscriber's handler runs on its own
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(batch) {
		t.Fatalf("%d messages, want %d", len(got), len(batch))
	}
	m := got["id-7"]
	var x tap.Exchange
	if err := json.Unmarshal(m.Body, &x); err != nil || x.CorrelationID != "id-7" || x.Request.Body[0] != 7 ||
		m.Headers["content-type"] != "application/json" || m.Headers[publish.Header] != "exchange" {
		t.Errorf("message %+v: %+v, %v", m.Headers, x, err)
	}
	cancel()
	<-done
	_ = b.Close()
	if err := s.Write(context.Background(), batch[:1]); err == nil {
		t.Error("publishing to a closed broker did not fail")
	}
}
