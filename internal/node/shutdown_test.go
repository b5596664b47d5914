package node_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

func readyz(n *node.Node) int {
	rec := httptest.NewRecorder()
	n.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	return rec.Code
}

func TestReadiness(t *testing.T) {
	cfg := testConfig()
	cfg.SetDefaults()
	n, err := node.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if code := readyz(n); code != http.StatusServiceUnavailable {
		t.Errorf("readyz before the reply consumer is positioned: %d", code)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready within 10s")
	}
	if code := readyz(n); code != http.StatusOK {
		t.Errorf("readyz when positioned: %d", code)
	}
	// Hold a request so that shutdown has something to drain.
	held := make(chan struct{})
	go func() {
		defer close(held)
		resp, err := http.Post("http://"+n.Addr()+"/demo/sleep?ms=300", "text/plain", strings.NewReader("x"))
		if err == nil {
			resp.Body.Close()
		}
	}()
	testenv.Eventually(t, 10*time.Second, "the held request registers", func() bool { return n.Gateway().Waiting() == 1 })
	cancel()
	<-n.Draining()
	if code := readyz(n); code != http.StatusServiceUnavailable {
		t.Errorf("readyz once shutdown started: %d", code)
	}
	<-held
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// 100 requests in flight on mixed routes when the node stops: those whose
// reply comes within the drain timeout get it (200), the rest are answered
// 503: results are in this process's memory, so no route may promise a
// Location that dies with it (cluster mode answers 202: clustertest). None
// hangs.
func TestShutdownWith100InFlight(t *testing.T) {
	cfg := testConfig()
	// The first kind must still be in flight when all 100 are registered
	// (3.5 s is the margin for a loaded machine) and finish within the drain.
	cfg.Shutdown.DrainTimeout = 6 * time.Second
	cfg.Routes = append(cfg.Routes, node.RouteConfig{Name: "long-sync", Method: "POST", Path: "/t/long-sync",
		Destination: "demo.sleep", Mode: "sync", Timeout: 30 * time.Second})
	n := start(t, cfg)
	type kind struct {
		path, prefer string
		count        int
		want         int
	}
	kinds := []kind{
		{"/demo/sleep?ms=3500", "wait=30", 40, http.StatusOK},                  // finishes while draining
		{"/demo/sleep?ms=20000", "wait=30", 30, http.StatusServiceUnavailable}, // auto: no 202 from memory
		{"/t/long-sync?ms=20000", "", 30, http.StatusServiceUnavailable},       // sync: 503
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
	t.Cleanup(client.CloseIdleConnections)
	type answer struct {
		kind   int
		status int
		loc    string
		err    error
	}
	answers := make(chan answer, 100)
	for ki, k := range kinds {
		for range k.count {
			go func() {
				req, _ := http.NewRequest("POST", n.base+k.path, strings.NewReader("x"))
				if k.prefer != "" {
					req.Header.Set("Prefer", k.prefer)
				}
				resp, err := client.Do(req)
				if err != nil {
					answers <- answer{kind: ki, err: err}
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				answers <- answer{ki, resp.StatusCode, resp.Header.Get("Location"), nil}
			}()
		}
	}
	testenv.Eventually(t, 10*time.Second, "100 requests register", func() bool { return n.Gateway().Waiting() == 100 })
	stopped := make(chan error, 1)
	go func() { stopped <- n.stop() }()

	counts := make([]int, len(kinds))
	timeout := time.After(30 * time.Second)
	for range 100 {
		select {
		case a := <-answers:
			k := kinds[a.kind]
			if a.err != nil || a.status != k.want {
				t.Errorf("%s: %d %v, want %d", k.path, a.status, a.err, k.want)
			}
			if a.status == http.StatusAccepted && !strings.HasPrefix(a.loc, api.PollPath) {
				t.Errorf("202 without a Location: %q", a.loc)
			}
			counts[a.kind]++
		case <-timeout:
			t.Fatalf("answers by kind %v after 30s: requests left hanging", counts)
		}
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if w := n.Gateway().Waiting(); w != 0 {
		t.Errorf("%d waiters after shutdown", w)
	}
}
