package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/internal/node"
)

// testConfig is the embedded demo configuration on a free port, with short
// budgets so that every status can be reached quickly.
func testConfig() node.Config {
	cfg := node.Embedded()
	cfg.Addr = "127.0.0.1:0"
	cfg.Node = "test"
	cfg.Shutdown.DrainTimeout = 5 * time.Second
	cfg.Shutdown.ReadinessDelay = time.Millisecond // TestShutdownReadinessDelay sets its own
	cfg.Routes = append(cfg.Routes,
		node.RouteConfig{Name: "quick-auto", Method: "POST", Path: "/t/auto", Destination: "demo.sleep", Mode: "auto", Wait: 50 * time.Millisecond, Timeout: 10 * time.Second},
		node.RouteConfig{Name: "quick-sync", Method: "POST", Path: "/t/sync", Destination: "demo.sleep", Mode: "sync", Timeout: 100 * time.Millisecond},
		node.RouteConfig{Name: "async", Method: "PUT", Path: "/t/async/{id}", Destination: "demo.echo", Mode: "async"},
		node.RouteConfig{Name: "small", Method: "POST", Path: "/t/small", Destination: "demo.echo", MaxBody: 1024},
		node.RouteConfig{Name: "nobody", Method: "POST", Path: "/t/nobody", Destination: "nobody.listens", Mode: "sync", Timeout: 100 * time.Millisecond},
	)
	cfg.ForwardHeaders = []string{"X-Request-Id"}
	return cfg
}

type running struct {
	*node.Node
	base string
	stop func() error // cancels Run and returns its error
}

func start(t testing.TB, cfg node.Config) *running {
	t.Helper()
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := node.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	return run(t, n)
}

// run runs n until the test ends and returns once it is ready.
func run(t testing.TB, n *node.Node) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once bool
	var runErr error
	stop := func() error {
		if !once {
			once = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("Run did not return within 30s of cancel")
			}
		}
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("Run ended before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("node not ready within 10s")
	}
	return &running{Node: n, base: "http://" + n.Addr(), stop: stop}
}

func send(t *testing.T, method, url string, body []byte, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// problem checks that resp is an RFC 9457 problem of type pt and returns it.
func problem(t *testing.T, resp *http.Response, body []byte, pt api.ProblemType) api.Problem {
	t.Helper()
	if resp.StatusCode != pt.Status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, pt.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	var p api.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body %s: %v", body, err)
	}
	if p.Type != pt.URI() || p.Status != pt.Status || p.Title != pt.Title || p.Instance == "" {
		t.Fatalf("problem %+v, want type %s status %d", p, pt.URI(), pt.Status)
	}
	if p.CorrelationID != "" && p.CorrelationID != resp.Header.Get(api.HeaderCorrelationID) {
		t.Errorf("problem correlation_id %q != header %q", p.CorrelationID, resp.Header.Get(api.HeaderCorrelationID))
	}
	return p
}

// pollUntilDone follows a Location until the result is there (bounded).
func pollUntilDone(t *testing.T, base, location string) (*http.Response, []byte) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		resp, body := send(t, "GET", base+location, nil, nil)
		if resp.StatusCode != http.StatusAccepted {
			return resp, body
		}
		if resp.Header.Get("Retry-After") == "" || resp.Header.Get("Location") != location {
			t.Fatalf("pending poll without Retry-After/Location: %v", resp.Header)
		}
		time.Sleep(20 * time.Millisecond) // a client's poll interval, not synchronisation
	}
	t.Fatalf("%s still pending after 10s", location)
	return nil, nil
}

func TestEndToEnd(t *testing.T) {
	n := start(t, testConfig())

	t.Run("sync reply", func(t *testing.T) {
		resp, body := send(t, "POST", n.base+"/demo/echo", []byte(`{"a":1}`),
			map[string]string{"Content-Type": "application/json", "X-Request-Id": "caller-42"})
		if resp.StatusCode != 200 || string(body) != `{"a":1}` {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		if got := resp.Header.Get("X-Request-Id"); got != "caller-42" {
			t.Errorf("X-Request-Id echoed as %q", got)
		}
		id, err := uuid.Parse(resp.Header.Get(api.HeaderCorrelationID))
		if err != nil || id.Version() != 7 {
			t.Errorf("correlation id %q is not a UUIDv7 (%v)", resp.Header.Get(api.HeaderCorrelationID), err)
		}
		if id.String() == "caller-42" {
			t.Error("the caller's request id was used as the key")
		}
	})

	t.Run("binary body without content type is not sniffed", func(t *testing.T) {
		payload := []byte("\x00\x01\xff<html>")
		resp, body := send(t, "POST", n.base+"/demo/echo", payload, nil)
		if resp.StatusCode != 200 || !bytes.Equal(body, payload) {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			t.Errorf("Content-Type %q was invented", ct)
		}
	})

	t.Run("respond-async then poll", func(t *testing.T) {
		resp, body := send(t, "POST", n.base+"/demo/echo", []byte("later"),
			map[string]string{"Prefer": "respond-async", "Content-Type": "text/plain"})
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if resp.Header.Get("Preference-Applied") != "respond-async" || resp.Header.Get("Retry-After") != "1" {
			t.Errorf("headers %v", resp.Header)
		}
		loc := resp.Header.Get("Location")
		if loc != api.PollPath+resp.Header.Get(api.HeaderCorrelationID) {
			t.Fatalf("Location %q does not name the correlation id", loc)
		}
		resp, body = pollUntilDone(t, n.base, loc)
		if resp.StatusCode != 200 || string(body) != "later" || resp.Header.Get("Content-Type") != "text/plain" {
			t.Fatalf("poll: %d %q %v", resp.StatusCode, body, resp.Header)
		}
	})

	t.Run("auto route answers 202 after its wait, then the late reply is pollable", func(t *testing.T) {
		resp, body := send(t, "POST", n.base+"/t/auto?ms=300", []byte("slow"), nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		resp, body = pollUntilDone(t, n.base, resp.Header.Get("Location"))
		if resp.StatusCode != 200 || string(body) != "slow" {
			t.Fatalf("poll: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("async route with a path parameter", func(t *testing.T) {
		resp, body := send(t, "PUT", n.base+"/t/async/7", []byte("x"), nil)
		if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Location") == "" {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if resp, _ := pollUntilDone(t, n.base, resp.Header.Get("Location")); resp.StatusCode != 200 {
			t.Fatalf("poll: %d", resp.StatusCode)
		}
	})

	t.Run("sync timeout is 504", func(t *testing.T) {
		resp, body := send(t, "POST", n.base+"/t/sync?ms=2000", []byte("x"), nil)
		p := problem(t, resp, body, api.ProblemTimeout)
		if p.CorrelationID == "" || p.Instance != "/t/sync" {
			t.Errorf("problem %+v", p)
		}
	})

	t.Run("no consumer on a sync route is 504, not a hang", func(t *testing.T) {
		resp, body := send(t, "POST", n.base+"/t/nobody", []byte("x"), nil)
		problem(t, resp, body, api.ProblemTimeout)
	})

	t.Run("the reply's status becomes the HTTP status", func(t *testing.T) {
		resp, body := send(t, "POST", n.base+"/demo/sleep?ms=nope", []byte("x"), nil)
		if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
		}
	})

	t.Run("oversized body is 413", func(t *testing.T) {
		resp, body := send(t, "POST", n.base+"/t/small", bytes.Repeat([]byte("a"), 1025), nil)
		problem(t, resp, body, api.ProblemBodyTooLarge)
		resp, body = send(t, "POST", n.base+"/t/small", bytes.Repeat([]byte("a"), 1024), nil)
		if resp.StatusCode != 200 || len(body) != 1024 {
			t.Fatalf("body at the limit: %d, %d bytes", resp.StatusCode, len(body))
		}
	})

	t.Run("unknown path is 404", func(t *testing.T) {
		resp, body := send(t, "POST", n.base+"/no/such/route", nil, nil)
		problem(t, resp, body, api.ProblemNotFound)
	})

	t.Run("wrong method is 405", func(t *testing.T) {
		resp, body := send(t, "DELETE", n.base+"/demo/echo", nil, nil)
		problem(t, resp, body, api.ProblemMethodNotAllowed)
	})

	t.Run("unknown, malformed and expired poll ids are 404", func(t *testing.T) {
		for _, id := range []string{uuid.Must(uuid.NewV7()).String(), "not-an-id", strings.Repeat("f", 36)} {
			resp, body := send(t, "GET", n.base+api.PollPath+id, nil, nil)
			problem(t, resp, body, api.ProblemRequestNotFound)
		}
	})

	t.Run("health", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz"} {
			if resp, body := send(t, "GET", n.base+p, nil, nil); resp.StatusCode != 200 {
				t.Errorf("%s: %d %s", p, resp.StatusCode, body)
			}
		}
	})

	if w := n.Gateway().Waiting(); w != 0 {
		t.Errorf("%d requests still registered after all answers", w)
	}
}

func TestGracefulShutdownLetsInFlightFinish(t *testing.T) {
	n := start(t, testConfig())
	type answer struct {
		status int
		body   string
		err    error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Post(n.base+"/demo/echo?ignored=1", "text/plain", strings.NewReader("x"))
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- answer{status: resp.StatusCode, body: string(b)}
	}()
	slow := make(chan answer, 1)
	go func() {
		resp, err := http.Post(n.base+"/demo/sleep?ms=500", "text/plain", strings.NewReader("slow"))
		if err != nil {
			slow <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slow <- answer{status: resp.StatusCode, body: string(b)}
	}()
	if a := <-got; a.err != nil || a.status != 200 {
		t.Fatalf("first request: %+v", a)
	}
	// Wait until the slow request is registered, then stop the node.
	deadline := time.Now().Add(5 * time.Second)
	for n.Gateway().Waiting() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n.Gateway().Waiting() != 1 {
		t.Fatal("slow request never registered")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- n.stop() }()
	a := <-slow
	if a.err != nil || a.status != 200 || a.body != "slow" {
		t.Fatalf("in-flight request during shutdown: %+v", a)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Run returned %v after a graceful stop", err)
	}
	if _, err := http.Get(n.base + "/healthz"); err == nil {
		t.Error("the listener still accepts after shutdown")
	}
}

func TestShutdownAnswersWaitersAfterDrainTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.Shutdown.DrainTimeout = 100 * time.Millisecond
	cfg.Routes = append(cfg.Routes, node.RouteConfig{Name: "long-sync", Method: "POST", Path: "/t/long-sync",
		Destination: "demo.sleep", Mode: "sync", Timeout: 30 * time.Second})
	n := start(t, cfg)
	type answer struct {
		path   string
		status int
		loc    string
	}
	answers := make(chan answer, 2)
	for _, p := range []string{"/demo/sleep?ms=20000", "/t/long-sync?ms=20000"} {
		go func() {
			req, _ := http.NewRequest("POST", n.base+p, strings.NewReader("x"))
			req.Header.Set("Prefer", "wait=30")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers <- answer{path: p}
				return
			}
			resp.Body.Close()
			answers <- answer{p, resp.StatusCode, resp.Header.Get("Location")}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for n.Gateway().Waiting() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n.Gateway().Waiting() != 2 {
		t.Fatalf("%d of 2 requests registered", n.Gateway().Waiting())
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		a := <-answers
		switch {
		case strings.HasPrefix(a.path, "/demo/sleep"):
			// Results die with this process: no Location to promise.
			if a.status != http.StatusServiceUnavailable || a.loc != "" {
				t.Errorf("pollable route at shutdown (memory results): %+v, want 503 without Location", a)
			}
		default:
			if a.status != http.StatusServiceUnavailable {
				t.Errorf("sync route at shutdown: %+v, want 503", a)
			}
		}
	}
}
