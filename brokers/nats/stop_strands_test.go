package nats_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/nats"
)

// A jetstream subscription that stops while it works through a backlog
// must not strand the deliveries on their way to its last fetch: the
// server counts them delivered, and had the stopping subscription stopped
// reading them they would wait ack_wait before another consumer of the
// group got them (a service restarted in a rolling deploy would delay up
// to a batch of requests past their deadline). The package doc says a
// stopping subscription naks what it took "so another consumer gets it at
// once": it reads its last fetch to the end and naks what came. ack_wait
// is set far above the test's bound, so a stranded delivery fails it.
// Run it repeatedly (-count=20): one run in six stranded a batch before.
func TestJetStreamStopStrandsNoDelivery(t *testing.T) {
	cfg := testConfig(t, nats.ModeJetStream)
	cfg.AckWait = time.Minute
	c := dial(t, cfg)
	subject := unique("sgtest.strand.")
	const total, conc = 200, 4

	var mu sync.Mutex
	handled := map[string]bool{}
	gate := make(chan struct{}) // closed once the backlog is published
	h := func(_ context.Context, m brokers.Message) error {
		<-gate
		time.Sleep(2 * time.Millisecond) // busy: fetches follow each other
		mu.Lock()
		handled[string(m.Body)] = true
		mu.Unlock()
		return nil
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(handled)
	}

	// The first consumer, stopped while it works through the backlog.
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- c.Subscribe(ctx, subject, h, brokers.WithConcurrency(conc), brokers.WithReady(func() { close(ready) }))
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("first subscription not ready")
	}
	for i := range total {
		pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.Publish(pctx, subject, brokers.Message{Body: []byte(strconv.Itoa(i))})
		pcancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	close(gate)
	deadline := time.Now().Add(10 * time.Second)
	for count() < total/4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling a condition with a deadline
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("first subscription: %v", err)
	}
	before := count()

	// Another consumer of the group (a new service process) gets the rest
	// at once.
	subscribe(t, dial(t, cfg), subject, h, brokers.WithConcurrency(conc))
	deadline = time.Now().Add(10 * time.Second)
	for count() < total && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
	if got := count(); got < total {
		t.Fatalf("%d of %d messages handled within 10s of the next consumer starting (%d by the first, stopped; the rest stranded until ack_wait)",
			got, total, before)
	}
}
