package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/syncgate/syncgate/api/middleware"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
)

// echoGateway answers every request with its own body at once: the
// cheapest possible use case, so that the middleware's share shows fully.
type echoGateway struct{}

func (echoGateway) Do(_ context.Context, req *gateway.Request) (gateway.Outcome, error) {
	return gateway.Outcome{ID: req.ID, Reply: envelope.Reply{ContentType: req.Message.ContentType, Body: req.Message.Body}}, nil
}
func (echoGateway) Result(context.Context, string, string) (correlation.Result, error) {
	return correlation.Result{}, gateway.ErrNotFound
}
func (echoGateway) Await(context.Context, string, string, time.Duration) (correlation.Result, error) {
	return correlation.Result{}, gateway.ErrNotFound
}
func (echoGateway) Cancel(context.Context, string, string) error { return gateway.ErrNotFound }
func (echoGateway) Watch(context.Context, string)                {}
func (echoGateway) Events(context.Context, string, string, int, time.Duration) (correlation.Result, error) {
	return correlation.Result{}, gateway.ErrNotFound
}

// load sends POSTs to url from clients keep-alive connections for d and
// returns completed requests per second and the process's CPU time per
// request (client and server, user and system); any non-200 fails the
// benchmark. CPU per request is the figure that other processes on a shared
// machine do not move: their load steals wall time, not our CPU time.
func load(b *testing.B, client *http.Client, url string, clients int, d time.Duration) (rate, cpuPerReq float64) {
	b.Helper()
	payload := []byte(`{"order":42,"amount":"12.50"}`)
	var done atomic.Int64
	var failed atomic.Value
	stop := time.Now().Add(d)
	cpu0 := cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for time.Now().Before(stop) {
				req, _ := http.NewRequest("POST", url, bytes.NewReader(payload))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
				resp, err := client.Do(req)
				if err != nil {
					failed.Store(err.Error())
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !bytes.Equal(body, payload) {
					failed.Store(fmt.Sprintf("status %d body %q", resp.StatusCode, body))
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f != nil {
		b.Fatalf("%s: %v", url, f)
	}
	n := float64(done.Load())
	return n / time.Since(start).Seconds(), (cpuTime() - cpu0).Seconds() / n
}

// cpuTime returns the CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMiddlewareStack compares, in one run over loopback HTTP with 64
// keep-alive clients, the full stack (request info, metrics, access log at
// info through the context log handler, recovery, request id, trace context,
// header limit, global and per-route in-flight limits, body timeout, chi
// routing) against the bare route handler, both in front of an instant echo
// gateway. Phases alternate so machine noise hits both alike; run with
// -benchtime 1x.
func BenchmarkMiddlewareStack(b *testing.B) {
	const clients = 64
	phase := 750 * time.Millisecond
	rt := Route{Method: "POST", Path: "/orders/{id}", MaxBody: 1 << 20, MaxInFlight: 5000,
		Route: &gateway.Route{Name: "orders", Destination: "orders", Mode: gateway.ModeAuto, Timeout: time.Second}}

	bareSrv := &server{gw: echoGateway{}, log: slog.New(slog.DiscardHandler), retryAfter: time.Second}
	bare := httptest.NewServer(bareSrv.routeHandler(rt))
	b.Cleanup(bare.Close)

	reg := prometheus.NewRegistry()
	log := slog.New(middleware.ContextHandler(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))).
		With(slog.String("node", "bench"))
	h, err := New(Options{
		Gateway: echoGateway{}, Routes: []Route{rt}, Logger: log, Registerer: reg,
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), MaxInFlight: 10_000,
		MaxHeaderBytes: 64 << 10, BodyTimeout: 30 * time.Second,
		Checks: []Check{{Name: "always", Check: func(context.Context) error { return nil }}},
	})
	if err != nil {
		b.Fatal(err)
	}
	full := httptest.NewServer(h)
	b.Cleanup(full.Close)

	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: 2 * clients, MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients,
	}}
	b.Cleanup(client.CloseIdleConnections)
	load(b, client, bare.URL+"/orders/1", clients, 300*time.Millisecond)
	load(b, client, full.URL+"/orders/1", clients, 300*time.Millisecond)

	// Many short alternating rounds, and the median of the per-round
	// ratios: on a shared machine a burst of someone else's load then skews
	// one round, not the result.
	var bareSum, fullSum, bareCPU, fullCPU float64
	var ratios []float64
	const rounds = 8
	b.ResetTimer()
	for range b.N {
		for i := range rounds {
			var bareRate, fullRate, bc, fc float64
			if i%2 == 0 {
				bareRate, bc = load(b, client, bare.URL+"/orders/1", clients, phase)
				fullRate, fc = load(b, client, full.URL+"/orders/1", clients, phase)
			} else {
				fullRate, fc = load(b, client, full.URL+"/orders/1", clients, phase)
				bareRate, bc = load(b, client, bare.URL+"/orders/1", clients, phase)
			}
			bareSum += bareRate
			fullSum += fullRate
			bareCPU += bc
			fullCPU += fc
			ratios = append(ratios, fullRate/bareRate)
		}
	}
	b.StopTimer()
	runs := float64(rounds * b.N)
	slices.Sort(ratios)
	b.ReportMetric(bareSum/runs, "bare_req/s")
	b.ReportMetric(fullSum/runs, "stack_req/s")
	b.ReportMetric(ratios[len(ratios)/2], "median_stack/bare")
	b.ReportMetric(bareCPU/runs*1e6, "bare_cpu_µs/req")
	b.ReportMetric(fullCPU/runs*1e6, "stack_cpu_µs/req")
	b.ReportMetric(bareCPU/fullCPU, "cpu_bare/stack")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkMiddlewareStackInProcess measures the same two handlers without
// the network: the stack's CPU cost per request, the worst case for the
// ratio.
func BenchmarkMiddlewareStackInProcess(b *testing.B) {
	rt := Route{Method: "POST", Path: "/orders/{id}", MaxBody: 1 << 20, MaxInFlight: 5000,
		Route: &gateway.Route{Name: "orders", Destination: "orders", Mode: gateway.ModeAuto, Timeout: time.Second}}
	bareSrv := &server{gw: echoGateway{}, log: slog.New(slog.DiscardHandler), retryAfter: time.Second}
	reg := prometheus.NewRegistry()
	log := slog.New(middleware.ContextHandler(slog.NewJSONHandler(io.Discard, nil))).With(slog.String("node", "bench"))
	full, err := New(Options{Gateway: echoGateway{}, Routes: []Route{rt}, Logger: log, Registerer: reg,
		MaxInFlight: 10_000, MaxHeaderBytes: 64 << 10, BodyTimeout: 30 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	payload := []byte(`{"order":42,"amount":"12.50"}`)
	for name, h := range map[string]http.Handler{"bare": bareSrv.routeHandler(rt), "stack": full} {
		b.Run(name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest("POST", "/orders/1", bytes.NewReader(payload))
					req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if rec.Code != 200 {
						b.Fatal(rec.Code)
					}
				}
			})
		})
	}
}

// BenchmarkAPIKeyAuthInProcess measures the full stack in process with no
// auth and with API-key auth (SHA-256 of the key, constant-time comparison
// with two configured keys): the auth share of a request's CPU, without the
// broker round trip that dilutes it on the memory path.
func BenchmarkAPIKeyAuthInProcess(b *testing.B) {
	rt := Route{Method: "POST", Path: "/orders/{id}", MaxBody: 1 << 20,
		Route: &gateway.Route{Name: "orders", Destination: "orders", Mode: gateway.ModeAuto, Timeout: time.Second}}
	keys, err := middleware.NewAPIKeys([]middleware.APIKeyHash{
		{Principal: "alice", SHA256: "23126898a939dbada8c4901583de6ccdf2878683d0d6a452a8f21b0a97c44152"},
		{Principal: "bob", SHA256: "82658862fcae2f6222b1b14f986ecdf4705702926351a56d99e04973c2353e91"},
	})
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	payload := []byte(`{"order":42,"amount":"12.50"}`)
	for _, auth := range []middleware.Authenticator{nil, keys} {
		h, err := New(Options{Gateway: echoGateway{}, Routes: []Route{rt}, Logger: log, Auth: auth})
		if err != nil {
			b.Fatal(err)
		}
		name := "none"
		if auth != nil {
			name = "apikey"
		}
		b.Run(name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest("POST", "/orders/1", bytes.NewReader(payload))
					req.Header.Set("Authorization", "Bearer alice-demo-key-8f3b2a")
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if rec.Code != 200 {
						b.Fatal(rec.Code)
					}
				}
			})
		})
	}
}
