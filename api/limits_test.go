package api_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/gateway"
)

// blocking is a gateway whose Do holds every request until release closes.
func blocking() (*stub, chan struct{}, chan struct{}) {
	entered, release := make(chan struct{}, 16), make(chan struct{})
	return &stub{do: func(ctx context.Context, req *gateway.Request) (gateway.Outcome, error) {
		entered <- struct{}{}
		<-release
		return gateway.Outcome{ID: req.ID}, nil
	}}, entered, release
}

func TestInFlightLimits(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*api.Options)
		other string // a path that must still be served (GET /healthz or POST)
		want  api.ProblemType
	}{
		{"global", func(o *api.Options) { o.MaxInFlight = 2 }, "/healthz", api.ProblemOverloaded},
		{"per route", func(o *api.Options) {
			o.Routes[0].MaxInFlight = 2
			o.Routes = append(o.Routes, testRoute("/other", gateway.ModeAuto))
		}, "/other", api.ProblemRouteOverloaded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gw, entered, release := blocking()
			h := newHandler(t, gw, func(o *api.Options) { o.RetryAfter = 2 * time.Second; tt.mod(o) })
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() { serve(h, "POST", "/r", "x", nil) })
				<-entered
			}
			rec := serve(h, "POST", "/r", "x", nil)
			wantProblem(t, rec, tt.want)
			if ra := rec.Header().Get("Retry-After"); ra != "2" {
				t.Errorf("Retry-After %q, want 2", ra)
			}
			// Limits refuse at once; they never queue. Other paths still work.
			done := make(chan int, 1)
			method := "POST"
			if tt.other == "/healthz" {
				method = "GET"
			}
			go func() { done <- serve(h, method, tt.other, "x", nil).Code }()
			if tt.other != "/healthz" {
				<-entered
			}
			close(release)
			if code := <-done; code != http.StatusOK {
				t.Errorf("%s while the limit is reached: %d", tt.other, code)
			}
			wg.Wait()
			if rec := serve(h, "POST", "/r", "x", nil); rec.Code != http.StatusOK {
				t.Errorf("after the burst: %d", rec.Code)
			}
		})
	}
}

func TestHeaderLimit(t *testing.T) {
	h := newHandler(t, &stub{}, func(o *api.Options) { o.MaxHeaderBytes = 1024 })
	if rec := serve(h, "POST", "/r", "x", map[string]string{"X-Pad": strings.Repeat("a", 500)}); rec.Code != 200 {
		t.Fatalf("under the limit: %d", rec.Code)
	}
	rec := serve(h, "POST", "/r", "x", map[string]string{"X-Pad": strings.Repeat("a", 1100)})
	wantProblem(t, rec, api.ProblemHeaderTooLarge)
}

func TestBodyLimit(t *testing.T) {
	h := newHandler(t, &stub{}, nil)
	wantProblem(t, serve(h, "POST", "/r", strings.Repeat("a", 1025), nil), api.ProblemBodyTooLarge)
	if rec := serve(h, "POST", "/r", strings.Repeat("a", 1024), nil); rec.Code != 200 || rec.Body.Len() != 1024 {
		t.Fatalf("at the limit: %d", rec.Code)
	}
}

// A client that sends its headers and then stalls the body holds a slot only
// until the body timeout.
func TestBodyTimeout(t *testing.T) {
	h := newHandler(t, &stub{}, func(o *api.Options) { o.BodyTimeout = 100 * time.Millisecond })
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second)) // bounds the test, not the server
	if _, err := conn.Write([]byte("POST /r HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	resp := string(buf[:n])
	if !strings.HasPrefix(resp, "HTTP/1.1 408") || !strings.Contains(resp, api.ProblemBodyTimeout.URI()) {
		t.Fatalf("answer %q, want a 408 body-timeout problem", resp)
	}
}
