package node_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/rabbitmq"
	"github.com/syncgate/syncgate/brokers/rabbitmq/rabbitmqtest"
	"github.com/syncgate/syncgate/brokers/responder"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

// End-to-end tests on the real RabbitMQ: HTTP → the node as cmd/syncgate
// runs it → RabbitMQ → a responder service on its own connection → the
// node's reply queue → the waiting request. (Moved from brokers/rabbitmq,
// whose tests now exercise the adapter alone.)

type rabbitE2E struct {
	node   *node.Node
	base   string
	client *http.Client
	work   string
	gwName string
}

// rabbitE2EConfig returns a RabbitMQ configuration whose names are unique
// to the test and whose dead-letter topology is deleted when it ends.
func rabbitE2EConfig(t *testing.T) rabbitmq.Config {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end on RabbitMQ (about a minute, one test stops the server): make test runs it, make check does not")
	}
	testenv.RequireRabbitMQ(t)
	id := rabbitmqtest.Unique("sgtest")
	cfg := rabbitmq.Config{
		URL: testenv.RabbitMQURL(), ConnectionName: id,
		DeadLetterExchange: id + ".dlx", DeadLetterQueue: id + ".dlq",
		ReconnectInterval: 200 * time.Millisecond, Heartbeat: 5 * time.Second,
	}
	rabbitmqtest.DeleteQueueAtEnd(t, cfg.DeadLetterQueue)
	rabbitmqtest.DeleteExchangeAtEnd(t, cfg.DeadLetterExchange)
	return cfg
}

// startRabbitNode runs a node on cfg routing POST /call to work with the
// given mode and budget (wait: half of it), and returns once it is ready.
func startRabbitNode(t *testing.T, cfg rabbitmq.Config, mode string, timeout time.Duration, work string) *rabbitE2E {
	t.Helper()
	var c node.Config
	c.Addr, c.Node = "127.0.0.1:0", rabbitmqtest.Unique("e2e")
	c.ReplyTo = rabbitmqtest.Unique("syncgate.reply.e2e")
	rabbitmqtest.DeleteQueueAtEnd(t, c.ReplyTo)
	c.Broker.Kind, c.Broker.RabbitMQ = "rabbitmq", cfg
	c.Broker.RabbitMQ.ConnectionName += "-gw"
	c.Shutdown.ReadinessDelay = 0
	// A publish confirm takes milliseconds; 2 000 at once under -race on a
	// loaded 2-core machine (CI runs packages side by side) can take
	// seconds, past the 5 s default.
	c.Broker.PublishTimeout = 30 * time.Second
	c.Routes = []node.RouteConfig{{Name: "call", Method: http.MethodPost, Path: "/call", Destination: work,
		Mode: mode, Timeout: timeout, Wait: timeout / 2}}
	r := start(t, c)
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	t.Cleanup(client.CloseIdleConnections)
	return &rabbitE2E{node: r.Node, base: r.base, client: client, work: work, gwName: c.Broker.RabbitMQ.ConnectionName}
}

// newE2E starts a service answering a fresh work queue with h, and a node
// routing POST /call to it.
func newE2E(t *testing.T, cfg rabbitmq.Config, mode string, timeout time.Duration, h responder.Handler, concurrency int) *rabbitE2E {
	t.Helper()
	work := rabbitmqtest.Unique("sgtest.e2e")
	rabbitmqtest.DeleteQueueAtEnd(t, work)
	svcCfg := cfg
	svcCfg.ConnectionName += "-svc"
	svc, err := rabbitmq.Dial(svcCfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	service := &responder.Service{Subscriber: svc, Publisher: svc, Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- svc.Subscribe(ctx, work, service.Handler(h), brokers.WithConcurrency(concurrency),
			brokers.WithReady(func() { close(ready) }))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("the service's Subscribe did not return 20s after its context ended")
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("the service's Subscribe returned before ready: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the service not ready within 20s")
	}
	return startRabbitNode(t, cfg, mode, timeout, work)
}

type answer struct {
	status int
	body   string
	took   time.Duration
	err    error
}

func (e *rabbitE2E) call(ctx context.Context, body string) answer {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.base+"/call", strings.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := e.client.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: string(b), took: time.Since(start), err: err}
}

func echo(_ context.Context, req responder.Request) (responder.Reply, error) {
	return responder.Reply{ContentType: req.ContentType, Body: req.Body}, nil
}

// slow answers like echo after d, counting the requests it holds.
func slow(d time.Duration, holding *atomic.Int32) responder.Handler {
	return func(ctx context.Context, req responder.Request) (responder.Reply, error) {
		holding.Add(1)
		defer holding.Add(-1)
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return echo(ctx, req)
		case <-ctx.Done():
			return responder.Reply{}, ctx.Err()
		}
	}
}

// TestE2EConcurrentRequests: 2 000 concurrent HTTP requests through one
// gateway node on RabbitMQ, every body matched to its request, and the
// correlation registry back to 0.
func TestE2EConcurrentRequests(t *testing.T) {
	rabbitmqtest.Shared(t) // no outage test of another package stops the server meanwhile
	const n = 2000
	cfg := rabbitE2EConfig(t)
	e := newE2E(t, cfg, "sync", 60*time.Second, echo, 64)
	var wg sync.WaitGroup
	answers := make([]answer, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			answers[i] = e.call(t.Context(), fmt.Sprintf("request-%04d", i))
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	took := time.Since(began)
	for i, a := range answers {
		if a.err != nil || a.status != http.StatusOK || a.body != fmt.Sprintf("request-%04d", i) {
			t.Fatalf("request %d: status %d body %q err %v", i, a.status, a.body, a.err)
		}
	}
	t.Logf("%d concurrent requests answered in %s (%.0f req/s)", n, took, n/took.Seconds())
	testenv.Eventually(t, 5*time.Second, "registry empty", func() bool { return e.node.Gateway().Waiting() == 0 })
	testenv.Eventually(t, 5*time.Second, "work queue drained", func() bool { return rabbitmqtest.Messages(e.work) == 0 })
	if d := rabbitmqtest.Messages(cfg.DeadLetterQueue); d != 0 {
		t.Fatalf("%d messages dead-lettered", d)
	}
}

// TestE2EUnroutable: a route whose queue nobody declared answers 503 at once.
func TestE2EUnroutable(t *testing.T) {
	rabbitmqtest.Shared(t) // no outage test of another package stops the server meanwhile
	cfg := rabbitE2EConfig(t)
	e := startRabbitNode(t, cfg, "sync", 30*time.Second, rabbitmqtest.Unique("sgtest.nobody"))
	a := e.call(t.Context(), "x")
	if a.status != http.StatusServiceUnavailable || a.took > time.Second {
		t.Fatalf("unroutable route: status %d after %s, want 503 at once (%s)", a.status, a.took, a.body)
	}
}

// outageRun fires n requests at a slow service, waits until the service
// holds them all, runs outage, and checks that every one of them is
// answered with its own body within the route's budget.
func outageRun(t *testing.T, e *rabbitE2E, n int, holding *atomic.Int32, budget time.Duration, outage func()) {
	t.Helper()
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { answers[i] = e.call(t.Context(), fmt.Sprintf("before-outage-%d", i)) })
	}
	testenv.Eventually(t, 10*time.Second, "the service holds every request", func() bool { return holding.Load() == int32(n) })
	outage()
	wg.Wait()
	for i, a := range answers {
		if a.err != nil || a.status != http.StatusOK || a.body != fmt.Sprintf("before-outage-%d", i) {
			t.Errorf("request %d published before the outage: status %d body %q err %v after %s", i, a.status, a.body, a.err, a.took)
		}
		if a.took > budget+2*time.Second {
			t.Errorf("request %d took %s, past its %s budget", i, a.took, budget)
		}
	}
}

// expect503 calls until one answer is 503 (the broker is down for the
// gateway), checking it came at once.
func expect503(t *testing.T, e *rabbitE2E) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		// A call published just before the loss would wait for the slow
		// service; give up on it quickly and try again.
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		a := e.call(ctx, "during-outage")
		cancel()
		if a.status == http.StatusServiceUnavailable {
			if a.took > time.Second {
				t.Fatalf("503 during the outage took %s", a.took)
			}
			return
		}
	}
	t.Fatal("no 503 during the outage")
}

// expectServing calls until a request is answered 200, within limit.
func expectServing(t *testing.T, e *rabbitE2E, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		ctx, cancel := context.WithTimeout(t.Context(), limit)
		a := e.call(ctx, "after-outage")
		cancel()
		if a.status == http.StatusOK && a.body == "after-outage" {
			return time.Since(start)
		}
		if a.status != http.StatusServiceUnavailable && a.status != http.StatusGatewayTimeout {
			t.Fatalf("after the outage: status %d body %q err %v", a.status, a.body, a.err)
		}
	}
	t.Fatalf("not serving again within %s", limit)
	return 0
}

// TestE2EConnectionDropSlowService: the gateway node's connections are
// dropped while a slow service holds requests. Those requests get their
// replies after the recovery, within their budget; requests during the
// outage get 503 at once; requests succeed again soon after; the registry
// ends empty.
func TestE2EConnectionDropSlowService(t *testing.T) {
	rabbitmqtest.Shared(t) // no outage test of another package stops the server meanwhile
	rabbitmqtest.RequireRabbitmqctl(t)
	cfg := rabbitE2EConfig(t)
	cfg.ReconnectInterval = 3 * time.Second // an outage long enough to observe
	var holding atomic.Int32
	const budget = 20 * time.Second
	e := newE2E(t, cfg, "sync", budget, slow(2*time.Second, &holding), 32)
	outageRun(t, e, 16, &holding, budget, func() {
		for _, role := range []string{" subscriber", " publisher"} {
			if n := rabbitmqtest.CloseConnections(t, e.gwName+role); n != 1 {
				t.Errorf("closed %d gateway%s connections, want 1", n, role)
			}
		}
		expect503(t, e)
	})
	t.Logf("serving again %s after the held requests were answered", expectServing(t, e, 10*time.Second))
	testenv.Eventually(t, 5*time.Second, "registry empty", func() bool { return e.node.Gateway().Waiting() == 0 })
}

// TestE2EBrokerRestartSlowService: the broker restarts while a slow service
// holds requests. The requests (durable queue, persistent messages) are
// redelivered after the restart and answered within their budget; requests
// during the outage get 503 at once; new requests succeed within 10s of the
// broker being back; the registry ends empty.
func TestE2EBrokerRestartSlowService(t *testing.T) {
	cfg := rabbitE2EConfig(t)
	var holding atomic.Int32
	const budget = 40 * time.Second
	e := newE2E(t, cfg, "sync", budget, slow(time.Second, &holding), 32)
	outageRun(t, e, 8, &holding, budget, func() {
		start := rabbitmqtest.StopBroker(t)
		expect503(t, e)
		start()
		t.Logf("serving again %s after start_app/await_startup returned", expectServing(t, e, 10*time.Second))
	})
	testenv.Eventually(t, 5*time.Second, "registry empty", func() bool { return e.node.Gateway().Waiting() == 0 })
}

// TestE2EReplyNeverLands: a request whose reply cannot come ends at its
// deadline: 504 on a sync route, 202 on an auto route; never a hang.
func TestE2EReplyNeverLands(t *testing.T) {
	rabbitmqtest.Shared(t) // no outage test of another package stops the server meanwhile
	cfg := rabbitE2EConfig(t)
	never := func(ctx context.Context, _ responder.Request) (responder.Reply, error) {
		<-ctx.Done()
		return responder.Reply{}, ctx.Err()
	}
	for _, tc := range []struct {
		mode string
		want int
	}{{"sync", http.StatusGatewayTimeout}, {"auto", http.StatusAccepted}} {
		t.Run(tc.mode, func(t *testing.T) {
			e := newE2E(t, cfg, tc.mode, 2*time.Second, never, 4)
			a := e.call(t.Context(), "x")
			if a.status != tc.want || a.took > 4*time.Second {
				t.Fatalf("status %d after %s, want %d by the deadline (%s)", a.status, a.took, tc.want, bytes.TrimSpace([]byte(a.body)))
			}
			testenv.Eventually(t, 5*time.Second, "registry empty", func() bool { return e.node.Gateway().Waiting() == 0 })
		})
	}
}
