package nats_test

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/nats"
)

// A jetstream subscription that stops while it works through a backlog
// can leave a fetch's batch on its way to it: the server delivered those
// messages to the fetch's inbox, which the stopping subscription no longer
// reads, and they wait ack_wait (30 s by default) before another consumer
// of the group gets them. The package doc says a stopping subscription
// naks what it took "so another consumer gets it at once"; a service
// restarted in a rolling deploy thus delays up to a batch of requests by
// ack_wait, past many a request's deadline. Known: runs with
// SYNCGATE_NATS_KNOWN_LOSS=1, and fails today in about one run of six (4
// of 200 messages, one fetch's batch, late; in TestNATSJetStreamServiceRestart
// of internal/node with the default ack_wait, in about half the runs).
//
// Proposed fix (jetstream.go, runJetStream/fetch): on stop, do not
// unsubscribe the pending fetch; keep reading it until the server ends the
// pull request (its expiry, or filled) and nak what arrives, as
// nakAbandoned does for deliveries already taken. A shorter fetch expiry
// (1 s, heartbeats kept) bounds how long Close waits for that.
func TestJetStreamStopStrandsNoDelivery(t *testing.T) {
	if os.Getenv("SYNCGATE_NATS_KNOWN_LOSS") != "1" {
		t.Skip("known: a jetstream subscription that stops while busy strands deliveries for ack_wait; SYNCGATE_NATS_KNOWN_LOSS=1 runs this test")
	}
	cfg := testConfig(t, nats.ModeJetStream)
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
		t.Fatalf("%d of %d messages handled within 10s of the next consumer starting (%d by the first, stopped; the rest wait for ack_wait)",
			got, total, before)
	}
}
