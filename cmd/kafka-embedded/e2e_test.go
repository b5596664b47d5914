package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/kafka"
	"github.com/syncgate/syncgate/brokers/responder"
	"github.com/syncgate/syncgate/brokers/responder/demo"
	"github.com/syncgate/syncgate/internal/node"
)

// End to end over the Kafka wire protocol: HTTP → the real node
// (internal/node, as cmd/syncgate runs it) → Kafka (kfake) → demo service
// (responder SDK, on its own kafka.Broker as if in another process) →
// Kafka → the node's reply inbox → HTTP.

const replyTo = "syncgate.reply.e2e"

type e2e struct {
	url  string
	node *node.Node
	http *http.Client
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startE2E runs a node and the demo service against brokers and returns
// once both are positioned.
func startE2E(t *testing.T, brokerAddrs []string) *e2e {
	t.Helper()
	kcfg := kafka.Config{Brokers: brokerAddrs, HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second, JoinGroupBackoff: 200 * time.Millisecond,
		// Same budget as the node's publish_timeout below: under -race on a
		// loaded 2-core machine one produce to the in-process broker can take seconds.
		WriteTimeout: 30 * time.Second}
	var cfg node.Config
	cfg.Addr, cfg.Node, cfg.ReplyTo = "127.0.0.1:0", "e2e", replyTo
	cfg.Broker.Kind, cfg.Broker.Kafka = "kafka", kcfg
	// A publish takes milliseconds; the generous timeout is for 2 000
	// requests under -race on a loaded 2-core machine, where thousands of
	// runnable goroutines delay every hop of a produce request.
	cfg.Broker.PublishTimeout = 30 * time.Second
	cfg.Shutdown.ReadinessDelay = 0
	cfg.Routes = []node.RouteConfig{{Name: "echo", Method: http.MethodPost, Path: "/echo", Destination: demo.EchoDestination, Mode: "sync", Timeout: 30 * time.Second}}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := node.New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	kcfg.SetDefaults()
	kcfg.Logger = discard()
	svcBroker, err := kafka.New(kcfg)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	ready := make(chan string, 1)
	wg.Go(func() {
		if err := n.Run(ctx); err != nil {
			t.Errorf("node: %v", err)
		}
	})
	wg.Go(func() {
		svc := &responder.Service{Subscriber: svcBroker, Publisher: svcBroker, Logger: discard()}
		if err := demo.Serve(ctx, svc, func() { ready <- "demo service" }, brokers.WithConcurrency(64)); err != nil {
			t.Errorf("demo service: %v", err)
		}
	})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2048}, Timeout: time.Minute}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = svcBroker.Close()
		client.CloseIdleConnections()
	})
	select {
	case <-n.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("node not ready within 30s")
	}
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("demo service not positioned within 30s")
	}
	return &e2e{url: "http://" + n.Addr(), node: n, http: client}
}

// delivered returns syncgate_replies_total{outcome="delivered"}: replies
// handed to a waiting request, as the node's metrics count them.
func (e *e2e) delivered(t *testing.T) float64 {
	t.Helper()
	mfs, err := e.node.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "syncgate_replies_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == "delivered" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// post sends body to /echo and returns the status and the body.
func (e *e2e) post(ctx context.Context, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url+"/echo", bytes.NewBufferString(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := e.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestGatewayOverKafka: 2 000 concurrent requests through HTTP and Kafka,
// every reply body matched to its request, the registry back to 0.
func TestGatewayOverKafka(t *testing.T) {
	const n = 2000
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, demo.EchoDestination, demo.SleepDestination))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	e := startE2E(t, c.ListenAddrs())

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			body := fmt.Sprintf("request %d %d", i, time.Now().UnixNano())
			status, got, err := e.post(ctx, body)
			switch {
			case err != nil:
				errs <- err
			case status != http.StatusOK:
				errs <- fmt.Errorf("request %d: status %d: %s", i, status, got)
			case got != body:
				errs <- fmt.Errorf("request %d: got body %q, want %q", i, got, body)
			}
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	took := time.Since(began)
	close(errs)
	failed := 0
	for err := range errs {
		if failed++; failed <= 5 {
			t.Error(err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d requests failed", failed, n)
	}
	if w := e.node.Gateway().Waiting(); w != 0 {
		t.Fatalf("registry holds %d waiters after every request was answered", w)
	}
	if d := e.delivered(t); d != n {
		t.Errorf("%v replies delivered to waiters, want %d", d, n)
	}
	t.Logf("%d concurrent requests answered in %v (%.0f req/s)", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
}

// TestGatewayKafkaOutage: with the broker gone, requests fail fast with 503
// instead of waiting for their 30s timeout; when the broker is back on the
// same address with its data, requests succeed again without a restart.
func TestGatewayKafkaOutage(t *testing.T) {
	dir := t.TempDir()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DataDir(dir), kfake.SeedTopics(4, demo.EchoDestination, demo.SleepDestination)}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	addr := c.ListenAddrs()[0]
	e := startE2E(t, []string{addr})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if status, body, err := e.post(ctx, "before"); err != nil || status != 200 || body != "before" {
		t.Fatalf("before the outage: %d %q %v", status, body, err)
	}

	c.Close()
	for i := range 3 {
		began := time.Now()
		status, body, err := e.post(ctx, "during")
		took := time.Since(began)
		if err != nil || status != http.StatusServiceUnavailable {
			t.Fatalf("during the outage: %d %q %v, want 503", status, body, err)
		}
		if took > 3*time.Second {
			t.Fatalf("503 took %v: it should come at once, not near the route's 30s timeout", took)
		}
		t.Logf("outage request %d: 503 after %v", i, took.Round(time.Millisecond))
	}

	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	c2, err := kfake.NewCluster(append(opts, kfake.Ports(p))...)
	if err != nil {
		t.Fatalf("restart kfake on %s: %v", addr, err)
	}
	t.Cleanup(c2.Close)
	// The first request after the restart may still meet a dead pooled
	// connection (503) or wait for the service's group to rejoin (200,
	// slowly); within a few attempts it is a 200.
	poll := time.NewTicker(200 * time.Millisecond)
	defer poll.Stop()
	for attempt := 1; ; attempt++ {
		status, body, err := e.post(ctx, "after")
		if err == nil && status == 200 && body == "after" {
			t.Logf("recovered at attempt %d", attempt)
			break
		}
		if attempt == 50 || ctx.Err() != nil {
			t.Fatalf("no recovery after %d attempts: %d %q %v", attempt, status, body, err)
		}
		<-poll.C
	}
	if w := e.node.Gateway().Waiting(); w != 0 {
		t.Fatalf("registry holds %d waiters", w)
	}
}
