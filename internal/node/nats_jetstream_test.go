package node_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/brokers"
	natsb "github.com/syncgate/syncgate/brokers/nats"
	"github.com/syncgate/syncgate/brokers/responder"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

// TestNATSJetStreamServiceRestart: in jetstream mode no request is lost
// across a service restart, and none is handled twice. 200 requests go to
// an async route; the service (the responder SDK on its own connection,
// counting the correlation ids it is handed) is stopped once it handled
// 30 of the first 100, the other 100 are sent while it is gone, and a new
// service process (same group: the same durable consumer) takes over.
// Every request's 202 ends in its own reply when polled, the service saw
// every correlation id exactly once, and the stream's consumer holds
// nothing more to deliver (so no duplicate can come later).
func TestNATSJetStreamServiceRestart(t *testing.T) {
	srv := testenv.StartNATSServer(t, true)
	// The defaults: ack_wait included, since a stopping subscription
	// strands nothing (TestJetStreamStopStrandsNoDelivery in brokers/nats).
	ncfg := restartNATSConfig(srv.URL, natsb.ModeJetStream)
	const (
		dest  = "jstest.count"
		group = "counter"
		total = 200
	)
	var (
		mu      sync.Mutex
		seen    = map[string]int{}    // correlation id -> handler calls
		bodies  = map[string]string{} // correlation id -> body handled
		handled = make(chan struct{}, 4*total)
	)
	count := func(_ context.Context, req responder.Request) (responder.Reply, error) {
		// Slow enough for some requests to be in the service's hands when
		// it stops; the context is not honoured, so a request whose
		// handler ran is answered and acknowledged, never handled again.
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		seen[req.CorrelationID]++
		bodies[req.CorrelationID] = string(req.Body)
		mu.Unlock()
		handled <- struct{}{}
		return responder.Reply{Status: 200, ContentType: "text/plain", Body: req.Body}, nil
	}
	serve := func(ctx context.Context, svc *responder.Service, ready func()) error {
		return svc.Serve(ctx, dest, count, brokers.WithGroup(group), brokers.WithConcurrency(4), brokers.WithReady(ready))
	}
	stopService := startNATSService(t, ncfg, serve) // creates the stream and its consumer

	cfg := node.Embedded()
	cfg.Addr = "127.0.0.1:0"
	cfg.Node = "nats-js-" + strconv.Itoa(testenv.FreePort(t))
	cfg.Demo.Enabled = false
	cfg.Broker.Kind = "nats"
	cfg.Broker.NATS = ncfg
	cfg.Shutdown.ReadinessDelay = time.Millisecond
	cfg.Routes = []node.RouteConfig{{Name: "count", Method: "POST", Path: "/j/count", Destination: dest, Mode: "async", Timeout: 25 * time.Second}}
	n := start(t, cfg)

	type sent struct{ body, id, location string }
	requests := make([]sent, total)
	sendRange := func(from, to int) {
		var wg sync.WaitGroup
		work := make(chan int)
		for range 8 {
			wg.Go(func() {
				for i := range work {
					body := "js-" + strconv.Itoa(i)
					resp, err := http.Post(n.base+"/j/count", "text/plain", strings.NewReader(body))
					if err != nil {
						t.Errorf("%s: %v", body, err)
						continue
					}
					got, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusAccepted {
						t.Errorf("%s: %d %s", body, resp.StatusCode, got)
						continue
					}
					requests[i] = sent{body: body, id: resp.Header.Get(api.HeaderCorrelationID), location: resp.Header.Get("Location")}
				}
			})
		}
		for i := from; i < to; i++ {
			work <- i
		}
		close(work)
		wg.Wait()
	}
	stopped := make(chan bool, 1)
	go func() {
		timeout := time.After(15 * time.Second)
		for range 30 {
			select {
			case <-handled:
			case <-timeout:
				stopped <- false
				return
			}
		}
		stopService() // mid-way: requests are queued and in its hands
		stopped <- true
	}()
	sendRange(0, total/2)
	if !<-stopped {
		t.Fatal("the service handled fewer than 30 requests within 15s")
	}
	sendRange(total/2, total) // all wait in the stream
	if t.Failed() {
		t.FailNow()
	}
	mu.Lock()
	before := len(seen)
	mu.Unlock()
	if before >= total {
		t.Fatalf("the service handled all %d requests before it stopped", before)
	}
	if resp, body := send(t, "GET", n.base+requests[total-1].location, nil, nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("a request sent while the service was stopped is not pending: %d %s", resp.StatusCode, body)
	}

	startNATSService(t, ncfg, serve) // the service is back
	lost := 0
	for _, r := range requests {
		resp, body := pollUntilDoneWithin(t, n.base, r.location, 20*time.Second)
		if resp.StatusCode != http.StatusOK || string(body) != r.body {
			lost++
			t.Errorf("%s (%s): polled %d %q", r.body, r.id, resp.StatusCode, body)
		}
	}
	// Nothing left for the consumer to deliver (again): every message was
	// acknowledged, none waits for its ack.
	testenv.Eventually(t, 10*time.Second, "the consumer has nothing pending or unacknowledged", func() bool {
		stored, unacked, err := consumerPending(t.Context(), srv.URL, streamName(ncfg, dest))
		return err == nil && stored == 0 && unacked == 0
	})

	mu.Lock()
	defer mu.Unlock()
	twice := 0
	for _, r := range requests {
		switch c := seen[r.id]; {
		case c == 0:
			t.Errorf("%s (%s): never handed to the service", r.body, r.id)
		case c > 1:
			twice++
			t.Errorf("%s (%s): handed to the service %d times", r.body, r.id, c)
		}
		if bodies[r.id] != r.body {
			t.Errorf("%s (%s): the service got body %q", r.body, r.id, bodies[r.id])
		}
	}
	if len(seen) != total {
		t.Errorf("the service saw %d correlation ids, want %d", len(seen), total)
	}
	t.Logf("%d requests: %d handled before the stop, %d after; %d polls not 200 with their body; %d handled twice",
		total, before, len(seen)-before, lost, twice)
}
