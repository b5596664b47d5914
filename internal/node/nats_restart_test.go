package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncgate/syncgate/brokers"
	natsb "github.com/syncgate/syncgate/brokers/nats"
	"github.com/syncgate/syncgate/brokers/responder"
	"github.com/syncgate/syncgate/brokers/responder/demo"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

// restartNATSConfig is a NATS configuration for a private server that
// notices a restart at once (the server closes its clients' connections)
// and reconnects within a fraction of a second.
func restartNATSConfig(url, mode string) natsb.Config {
	return natsb.Config{URL: url, Mode: mode, ReconnectInterval: 100 * time.Millisecond,
		DialTimeout: 2 * time.Second, Logger: slog.New(slog.DiscardHandler)}
}

// startNATSService runs serve (the demo service's Serve, or a test's own)
// on a connection of its own to ncfg's server, as cmd/demo --broker nats
// does, and returns once it is ready. stop ends it and closes its
// connection; it is idempotent and also runs when the test ends.
func startNATSService(t *testing.T, ncfg natsb.Config, serve func(context.Context, *responder.Service, func()) error) (stop func()) {
	t.Helper()
	c, err := natsb.Dial(ncfg)
	if err != nil {
		t.Fatalf("service: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		svc := &responder.Service{Subscriber: c, Publisher: c, Logger: slog.New(slog.DiscardHandler)}
		done <- serve(ctx, svc, func() { close(ready) })
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("service: %v", err)
			}
			_ = c.Close()
		})
	}
	t.Cleanup(stop)
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("service ended before ready: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("service not ready within 15s")
	}
	return stop
}

// natsOutcome is how one request of the restart load ended.
type natsOutcome struct {
	body     string // what the request sent
	status   int    // the first answer's
	problem  string // its problem type, for 503/504
	location string // for 202
	bad      string // what was wrong, if anything
}

// TestNATSServerRestartUnderLoad: gateway node and demo service (separate
// connections, as cmd/syncgate and cmd/demo run) on a private nats-server
// under the bounded load of 16 callers, 600 requests with a body of their
// own; the server is stopped (SIGTERM) after the first 150 answers, while
// requests are in flight, and started again with the same command once
// the requests sent during the outage ended. Every request must end in a
// defined outcome, none hangs (the client's timeout is 10 s), /readyz says
// 503 during the outage and 200 within 10 s of the server being back, and
// the last 200 requests, sent after that, all answer 200 with their own
// body.
//
// core: the route is sync (timeout 2 s): 200 with the request's own body,
// 503 broker-unavailable (refused while disconnected) or 504 timeout (lost
// with the server: core NATS is at most once).
//
// jetstream (file storage in the server's data dir): the route is auto
// (wait 2 s, timeout 10 s): 200, 503, or 202 — a request the stream
// accepted — which is polled after the restart and must end 200 with its
// own body: no accepted request is lost. Two things used to lose them: a
// delivery the service had not received when the server stopped came
// back after nats.ack_wait (then 30 s, now 5 s), past the deadline; and a
// reply the service published once reconnected, before the gateway node
// was, reached nobody while its request was acknowledged (a reply is now
// confirmed by the gateway's subscription, and published again until it
// is).
func TestNATSServerRestartUnderLoad(t *testing.T) {
	for _, mode := range []string{natsb.ModeCore, natsb.ModeJetStream} {
		t.Run(mode, func(t *testing.T) { natsRestartUnderLoad(t, mode) })
	}
}

func natsRestartUnderLoad(t *testing.T, mode string) {
	srv := testenv.StartNATSServer(t, true)
	ncfg := restartNATSConfig(srv.URL, mode)
	startNATSService(t, ncfg, func(ctx context.Context, svc *responder.Service, ready func()) error {
		return demo.Serve(ctx, svc, ready, brokers.WithConcurrency(16))
	})

	cfg := node.Embedded()
	cfg.Addr = "127.0.0.1:0"
	cfg.Node = "nats-restart-" + strconv.Itoa(testenv.FreePort(t))
	cfg.Demo.Enabled = false
	cfg.Broker.Kind = "nats"
	cfg.Broker.NATS = ncfg
	cfg.Shutdown.ReadinessDelay = time.Millisecond
	route := node.RouteConfig{Name: "echo", Method: "POST", Path: "/n/echo", Destination: demo.EchoDestination, Mode: "sync", Timeout: 2 * time.Second}
	if mode == natsb.ModeJetStream {
		route.Mode, route.Wait, route.Timeout = "auto", 2*time.Second, 10*time.Second
	}
	cfg.Routes = []node.RouteConfig{route}
	n := start(t, cfg)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(client.CloseIdleConnections)
	readyz := func() int {
		resp, err := client.Get(n.base + "/readyz")
		if err != nil {
			t.Fatalf("/readyz: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	waitReadyz := func(want int, within time.Duration) time.Duration {
		t.Helper()
		begin := time.Now()
		testenv.Eventually(t, within, fmt.Sprintf("/readyz answers %d", want), func() bool { return readyz() == want })
		return time.Since(begin)
	}
	waitReadyz(http.StatusOK, 10*time.Second)

	const (
		total     = 600
		stopAfter = 150 // answers before the server is stopped
		outage    = 400 // requests 0..outage-1 are sent before the restart
	)
	loadCtx, stopLoad := context.WithTimeout(context.Background(), 25*time.Second)
	defer stopLoad()
	do := func(i int) natsOutcome {
		o := natsOutcome{body: fmt.Sprintf("%s-r%03d", mode, i)}
		req, err := http.NewRequestWithContext(loadCtx, "POST", n.base+"/n/echo", strings.NewReader(o.body))
		if err != nil {
			o.bad = err.Error()
			return o
		}
		resp, err := client.Do(req)
		if err != nil {
			o.bad = fmt.Sprintf("no answer: %v", err)
			return o
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		o.status = resp.StatusCode
		switch resp.StatusCode {
		case http.StatusOK:
			if string(got) != o.body {
				o.bad = fmt.Sprintf("200 with %q", got)
			}
		case http.StatusAccepted:
			o.location = resp.Header.Get("Location")
			if mode != natsb.ModeJetStream || o.location == "" {
				o.bad = fmt.Sprintf("202 (Location %q) on a %s route", o.location, route.Mode)
			}
		case http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			var p struct{ Type string }
			if resp.Header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(got, &p) != nil ||
				!strings.HasPrefix(p.Type, "urn:syncgate:problem:") {
				o.bad = fmt.Sprintf("%d without a problem: %q", resp.StatusCode, got)
			}
			o.problem = strings.TrimPrefix(p.Type, "urn:syncgate:problem:")
		default:
			o.bad = fmt.Sprintf("unexpected %d %q", resp.StatusCode, got)
		}
		return o
	}

	// Requests are handed out one at a time to 16 callers, so that the
	// test decides what is sent before, during and after the outage.
	tickets := make(chan int)
	results := make(chan natsOutcome, total)
	var callers sync.WaitGroup
	for range 16 {
		callers.Go(func() {
			for {
				select {
				case i := <-tickets:
					results <- do(i)
				case <-loadCtx.Done():
					return
				}
			}
		})
	}
	defer func() {
		stopLoad()
		callers.Wait()
	}()
	feed := func(from, to int) {
		for i := from; i < to; i++ {
			select {
			case tickets <- i:
			case <-loadCtx.Done():
				return
			}
		}
	}
	var outcomes []natsOutcome
	collect := func(count int, what string) {
		t.Helper()
		for range count {
			select {
			case o := <-results:
				outcomes = append(outcomes, o)
			case <-loadCtx.Done():
				t.Fatalf("%s: %d of %d requests answered before the load's deadline", what, len(outcomes), total)
			}
		}
	}
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		feed(0, outage)
	}()
	collect(stopAfter, "before the stop")
	srv.Stop() // SIGTERM, with requests in flight
	stoppedAt := time.Now()
	waitReadyz(http.StatusServiceUnavailable, 5*time.Second)
	<-fed
	collect(outage-stopAfter, "during the outage")
	srv.Start()
	back := waitReadyz(http.StatusOK, 10*time.Second)
	t.Logf("%s: server down %v; /readyz 200 %v after it was back", mode, time.Since(stoppedAt)-back, back)
	// /readyz covers the gateway's own subscription; the service's comes
	// back on its own connection: one request answered says both are.
	testenv.Eventually(t, 10*time.Second, "a request answered 200 after the restart", func() bool {
		o := do(-1)
		return o.status == http.StatusOK && o.bad == ""
	})
	go feed(outage, total)
	collect(total-outage, "after the restart")
	stopLoad()

	// Accepted (202) requests end in their own reply when polled.
	polled := map[string]int{}
	for i := range outcomes {
		o := &outcomes[i]
		if o.status != http.StatusAccepted || o.bad != "" {
			continue
		}
		resp, body := pollUntilDoneWithin(t, n.base, o.location, route.Timeout+5*time.Second)
		polled[strconv.Itoa(resp.StatusCode)]++
		if resp.StatusCode != http.StatusOK || string(body) != o.body {
			o.bad = fmt.Sprintf("accepted (202), then polled: %d %q", resp.StatusCode, body)
			if mode == natsb.ModeJetStream && resp.StatusCode == http.StatusNotFound {
				if _, unacked, err := consumerPending(t.Context(), srv.URL, streamName(ncfg, demo.EchoDestination)); err == nil {
					o.bad += fmt.Sprintf(" (lost; %d deliveries await their ack)", unacked)
				}
			}
		}
	}

	counts := map[string]int{}
	var bad []string
	for i, o := range outcomes {
		key := strconv.Itoa(o.status)
		if o.problem != "" {
			key += " " + o.problem
		}
		counts[key]++
		if o.bad != "" {
			bad = append(bad, o.body+": "+o.bad)
		}
		if i >= outage && o.status != http.StatusOK {
			bad = append(bad, fmt.Sprintf("%s, sent once /readyz was 200 again and a request was answered: %d %s", o.body, o.status, o.problem))
		}
	}
	t.Logf("%s: %d requests; first answers by status: %v; 202s polled to: %v", mode, len(outcomes), counts, polled)
	for _, b := range bad[:min(len(bad), 20)] {
		t.Error(b)
	}
	if len(bad) > 20 {
		t.Errorf("... and %d more", len(bad)-20)
	}
}

// pollUntilDoneWithin follows a Location until the result is there or
// within passes (then it fails the test).
func pollUntilDoneWithin(t *testing.T, base, location string, within time.Duration) (*http.Response, []byte) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		resp, body := send(t, "GET", base+location, nil, nil)
		if resp.StatusCode != http.StatusAccepted {
			return resp, body
		}
		time.Sleep(50 * time.Millisecond) // a client's poll interval, not synchronisation
	}
	t.Fatalf("%s still pending after %v", location, within)
	return nil, nil
}

// streamName is the stream brokers/nats keeps subject's requests in.
func streamName(cfg natsb.Config, subject string) string {
	cfg.SetDefaults()
	return cfg.StreamName(subject)
}

// consumerPending returns how many messages stream still stores (a
// work-queue stream keeps a message until it is acknowledged) and how many
// of them its consumers delivered and wait an ack for, on a connection of
// its own.
func consumerPending(ctx context.Context, url, stream string) (stored, unacked int, err error) {
	nc, err := natsgo.Connect(url, natsgo.Timeout(2*time.Second))
	if err != nil {
		return 0, 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	l := s.ListConsumers(ctx)
	for ci := range l.Info() {
		unacked += ci.NumAckPending
	}
	if err := l.Err(); err != nil {
		return 0, 0, fmt.Errorf("listing the consumers of %s: %w", stream, err)
	}
	return int(info.State.Msgs), unacked, nil
}
