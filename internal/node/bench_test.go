package node_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/responder/demo"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

// hammer sends POSTs to url from `clients` keep-alive connections for d and
// returns completed requests per second. Any non-200 fails the benchmark.
func hammer(b *testing.B, client *http.Client, url string, clients int, d time.Duration) float64 {
	return hammerAs(b, client, url, "", clients, d)
}

// hammerAs is hammer with an Authorization header when authz is not "".
func hammerAs(b *testing.B, client *http.Client, url, authz string, clients int, d time.Duration) float64 {
	b.Helper()
	payload := []byte(`{"order":42,"amount":"12.50"}`)
	var done atomic.Int64
	var failed atomic.Value
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for time.Now().Before(stop) {
				req, err := http.NewRequest("POST", url, bytes.NewReader(payload))
				if err != nil {
					failed.Store(err.Error())
					return
				}
				req.Header.Set("Content-Type", "application/json")
				if authz != "" {
					req.Header.Set("Authorization", authz)
				}
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
	return float64(done.Load()) / time.Since(start).Seconds()
}

// BenchmarkGatewayVsDirect compares, in one run, HTTP → gateway → memory
// broker → demo echo → HTTP against direct HTTP to the same echo logic, with
// 64 concurrent keep-alive clients. Phases alternate (direct, gateway, ...)
// so that machine noise hits both alike; run with -benchtime 1x.
func BenchmarkGatewayVsDirect(b *testing.B) {
	const clients = 64
	phase := 2 * time.Second
	n := start(b, testConfig())
	direct := httptest.NewServer(demo.EchoHTTP())
	b.Cleanup(direct.Close)
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: clients, MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients,
	}}
	b.Cleanup(client.CloseIdleConnections)

	// Warm up both paths (connections, pools), not measured.
	hammer(b, client, direct.URL, clients, 300*time.Millisecond)
	hammer(b, client, n.base+"/demo/echo", clients, 300*time.Millisecond)

	// Besides throughput, the process's CPU time per request (the client
	// shares the process and costs the same in both phases, so the CPU
	// ratio understates the gateway's own: see BENCHMARKS.md, issue 17).
	pairedPhases(b, 3, "direct", "gateway",
		func() float64 { return hammer(b, client, direct.URL, clients, phase) },
		func() float64 { return hammer(b, client, n.base+"/demo/echo", clients, phase) }, phase)
	if w := n.Gateway().Waiting(); w != 0 {
		b.Errorf("%d waiters left after the run", w)
	}
}

// BenchmarkAPIKeyAuth measures the cost of API-key authentication on the
// memory path: one node running examples/auth.yaml's keys, two echo routes
// alike but for auth (none, required), both called with alice's key so
// that only the check differs, phases alternating, 64 keep-alive clients;
// run with -benchtime 1x.
func BenchmarkAPIKeyAuth(b *testing.B) {
	const clients = 64
	phase := 2 * time.Second
	n := start(b, apiKeyBenchConfig())
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: clients, MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients,
	}}
	b.Cleanup(client.CloseIdleConnections)
	const key = "Bearer alice-demo-key-8f3b2a"
	none, keyd := n.base+"/t/echo-none", n.base+"/t/echo-keyd"
	hammerAs(b, client, none, key, clients, 300*time.Millisecond)
	hammerAs(b, client, keyd, key, clients, 300*time.Millisecond)

	// Besides throughput, the process's CPU time per request (client and
	// node share the process; the client's share is the same in both
	// phases), which a busy machine disturbs far less than req/s.
	pairedPhases(b, 5, "none", "apikey",
		func() float64 { return hammerAs(b, client, none, key, clients, phase) },
		func() float64 { return hammerAs(b, client, keyd, key, clients, phase) }, phase)
}

// apiKeyBenchConfig is testConfig with examples/auth.yaml's keys, every
// route auth: none, and two echo routes alike but for auth:
// /t/echo-none (none) and /t/echo-keyd (required).
func apiKeyBenchConfig() node.Config {
	cfg := testConfig()
	cfg.Auth = node.AuthConfig{APIKeys: []node.APIKeyConfig{
		{Principal: "alice", SHA256: "23126898a939dbada8c4901583de6ccdf2878683d0d6a452a8f21b0a97c44152"},
		{Principal: "bob", SHA256: "82658862fcae2f6222b1b14f986ecdf4705702926351a56d99e04973c2353e91"},
	}}
	for i := range cfg.Routes {
		cfg.Routes[i].Auth = "none"
	}
	cfg.Routes = append(cfg.Routes,
		node.RouteConfig{Name: "echo-none", Method: "POST", Path: "/t/echo-none", Destination: "demo.echo", Mode: "auto", Auth: "none"},
		node.RouteConfig{Name: "echo-keyd", Method: "POST", Path: "/t/echo-keyd", Destination: "demo.echo", Mode: "auto", Auth: "required"})
	return cfg
}

// pairedPhases runs phases of a and b, alternating, rounds of each per
// b.N, each returning its req/s over phase, and reports, named an and bn,
// each one's req/s and their ratio (bn/an), and the process's CPU time per
// request of each and its ratio (cpu_bn/an): the client and the node share
// the process, the client's share is the same in both, and a busy machine
// disturbs CPU time far less than req/s.
func pairedPhases(b *testing.B, rounds int, an, bn string, a, bf func() float64, phase time.Duration) {
	var aSum, bSum, aCPU, bCPU, aN, bN float64
	b.ResetTimer()
	for range b.N {
		for range rounds {
			c0 := processCPU(b)
			r := a()
			aCPU += processCPU(b) - c0
			aSum, aN = aSum+r, aN+r*phase.Seconds()
			c0 = processCPU(b)
			r = bf()
			bCPU += processCPU(b) - c0
			bSum, bN = bSum+r, bN+r*phase.Seconds()
		}
	}
	b.StopTimer()
	runs := float64(rounds * b.N)
	b.ReportMetric(aSum/runs, an+"_req/s")
	b.ReportMetric(bSum/runs, bn+"_req/s")
	b.ReportMetric(bSum/aSum, bn+"/"+an)
	b.ReportMetric(aCPU/aN*1e6, an+"_cpu_µs/req")
	b.ReportMetric(bCPU/bN*1e6, bn+"_cpu_µs/req")
	b.ReportMetric((bCPU/bN)/(aCPU/aN), "cpu_"+bn+"/"+an)
	b.ReportMetric(0, "ns/op")
}

// processCPU returns the process's user+system CPU time so far, in seconds.
func processCPU(b *testing.B) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// BenchmarkAPIKeyAuthMemoryPath is the memory path of BenchmarkAPIKeyAuth
// without the network: the node's handler called in process, one request
// at a time, through the gateway, the memory broker and the demo echo, on
// a route with auth none (sub-benchmark none) and with auth required and
// alice's key (apikey). Being sequential and in process, its instruction
// count per request is stable under callgrind whatever else the machine
// does (BENCHMARKS.md gives the command).
func BenchmarkAPIKeyAuthMemoryPath(b *testing.B) {
	n := start(b, apiKeyBenchConfig())
	h := n.Handler()
	payload := []byte(`{"order":42,"amount":"12.50"}`)
	for _, tc := range []struct{ name, path string }{
		{"none", "/t/echo-none"},
		{"apikey", "/t/echo-keyd"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				req := httptest.NewRequest("POST", tc.path, bytes.NewReader(payload))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer alice-demo-key-8f3b2a")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), payload) {
					b.Fatalf("%s: %d %q", tc.path, rec.Code, rec.Body)
				}
			}
		})
	}
}

// BenchmarkMemoryPathAllocs reports the heap allocations and bytes of one
// request on the memory path (the node's handler called in process: the
// middleware stack, the gateway, the memory broker, the demo echo, the
// reply), one request at a time. The request is built once and its body
// rewound, so the figure is the node's; the harness's response recorder
// (3 allocations) is included. Aim (issue 17): at most 60 allocations per
// request (99 when the issue was filed, harness included).
func BenchmarkMemoryPathAllocs(b *testing.B) {
	n := start(b, testConfig())
	h := n.Handler()
	payload := []byte(`{"order":42,"amount":"12.50"}`)
	body := bytes.NewReader(payload)
	req := httptest.NewRequest("POST", "/demo/echo", body)
	req.Header.Set("Content-Type", "application/json")
	b.ReportAllocs()
	for b.Loop() {
		body.Reset(payload)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), payload) {
			b.Fatalf("%d %q", rec.Code, rec.Body)
		}
	}
}

// BenchmarkWaiterStack holds waiters requests open over loopback on a sync
// route whose destination nobody consumes (the gateway alone, as the
// many-waiters scenario's second part) and reports the goroutine stack and
// Go heap per waiting request, after a GC: the quick way to follow the
// scenario's "goroutine stacks KiB" column (issue 17's aim: at most 16 KiB
// of RSS per waiter in all). Run with -benchtime 1x.
func BenchmarkWaiterStack(b *testing.B) {
	const waiters = 2000
	cfg := testConfig()
	cfg.Routes = append(cfg.Routes, node.RouteConfig{Name: "hold", Method: "POST", Path: "/t/hold",
		Destination: "nobody.listens", Mode: "sync", Timeout: time.Minute})
	n := start(b, cfg)
	addr := strings.TrimPrefix(n.base, "http://")
	payload := `{"order":42,"amount":"12.50"}`
	raw := fmt.Sprintf("POST /t/hold HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		addr, len(payload), payload)
	memStats := func() runtime.MemStats {
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms
	}
	for range b.N {
		before := memStats()
		conns := make([]net.Conn, 0, waiters)
		for range waiters {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
			if _, err := io.WriteString(c, raw); err != nil {
				b.Fatal(err)
			}
		}
		testenv.Eventually(b, 30*time.Second, "every request waiting", func() bool { return n.Gateway().Waiting() == waiters })
		with := memStats()
		for _, c := range conns {
			_ = c.Close()
		}
		testenv.Eventually(b, 30*time.Second, "no request waiting", func() bool { return n.Gateway().Waiting() == 0 })
		b.ReportMetric(float64(int64(with.StackInuse)-int64(before.StackInuse))/waiters/1024, "stack_KiB/waiter")
		b.ReportMetric(float64(int64(with.HeapAlloc)-int64(before.HeapAlloc))/waiters/1024, "heap_KiB/waiter")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkTap measures what a tap to each kind of sink costs the memory
// path: one node, two echo routes alike but for a tap (to the sink of the
// sub-benchmark), phases alternating, 64 keep-alive clients over loopback;
// throughput and the process's CPU time per request of each (the client,
// the node and the sink's writer share the process). Run with -benchtime
// 1x.
//
//   - jsonl: a file in a temp directory.
//   - broker: the node's memory broker, on demo.sleep, whose demo consumer
//     drops every tap message at once (no correlation id): nobody would
//     consume the destination otherwise, and a memory queue nobody reads
//     is full after 10 000 messages (see BenchmarkTapDeadSink). The drain
//     runs in the process too, so its receive counts in the tapped CPU.
//   - broker-queued: the same without a consumer: a destination nobody
//     reads, and memory queues (broker.memory.queue_size) of 400 000, which
//     hold every exchange of the run; the exchanges stay in the heap.
//   - postgres: a table of the PostgreSQL at 127.0.0.1:5432 (skipped
//     without it). The server runs outside the process, on the same
//     machine: its CPU time is reported apart (pg_cpu_µs/req, from /proc,
//     every postgres process of the machine).
//
// After the phases it waits (30 s at most) for the sink's queue to empty
// and reports what the sink wrote, dropped and failed to write.
func BenchmarkTap(b *testing.B) {
	for _, tc := range []struct {
		kind  string
		sink  func(b *testing.B) node.TapSinkConfig
		pgCPU bool               // report the postgres processes' CPU time
		more  func(*node.Config) // nil: none
	}{
		{"jsonl", func(b *testing.B) node.TapSinkConfig {
			return node.TapSinkConfig{Kind: "jsonl", Path: filepath.Join(b.TempDir(), "exchanges.jsonl")}
		}, false, nil},
		{"broker", func(b *testing.B) node.TapSinkConfig {
			return node.TapSinkConfig{Kind: "broker", Destination: demo.SleepDestination}
		}, false, nil},
		{"broker-queued", func(b *testing.B) node.TapSinkConfig {
			return node.TapSinkConfig{Kind: "broker", Destination: "tap.nobody"}
		}, false, func(cfg *node.Config) { cfg.Broker.Memory.QueueSize = 400_000 }},
		{"postgres", func(b *testing.B) node.TapSinkConfig {
			url := testenv.RequirePostgres(b)
			return node.TapSinkConfig{Kind: "postgres", URL: url, Table: testenv.PostgresTable(b, url, "tap_bench")}
		}, true, nil},
	} {
		b.Run(tc.kind, func(b *testing.B) {
			sink := tc.sink(b)
			sink.Name = "audit"
			n, plain, tapped := startTapBench(b, sink, tc.more)
			client := benchClient(b, tapClients)
			hammerAs(b, client, plain, "", tapClients, 300*time.Millisecond)
			hammerAs(b, client, tapped, "", tapClients, 300*time.Millisecond)
			// The server's CPU time over each phase, when it runs apart.
			var other [2]float64 // plain, tapped: seconds
			var reqs [2]float64
			phase := func(i int, url string) func() float64 {
				return func() float64 {
					var o0 map[int]float64
					if tc.pgCPU {
						o0 = postgresCPU(b)
					}
					r := hammerAs(b, client, url, "", tapClients, tapPhase)
					if tc.pgCPU {
						other[i] += postgresCPUSince(b, o0)
					}
					reqs[i] += r * tapPhase.Seconds()
					return r
				}
			}
			pairedPhases(b, 5, "plain", "tapped", phase(0, plain), phase(1, tapped), tapPhase)
			if tc.pgCPU {
				b.ReportMetric(other[0]/reqs[0]*1e6, "plain_pg_cpu_µs/req")
				b.ReportMetric(other[1]/reqs[1]*1e6, "tapped_pg_cpu_µs/req")
			}
			testenv.Eventually(b, 30*time.Second, "the tap's queue empty", func() bool {
				return tapMetric(b, n, "syncgate_tap_queued", sink.Name) == 0
			})
			reportTapCounts(b, n, sink.Name)
		})
	}
}

// BenchmarkTapDeadSink measures the request latency of a route whose tap's
// sink is down against the same route without a tap: one node, phases
// alternating, 64 keep-alive clients over loopback; p50 and p99 of each
// phase (every request of the five rounds), their ratios, throughput, and
// what the sink dropped and failed to write (syncgate_tap_dropped_total,
// syncgate_tap_errors_total), against dead_reqs, every request to the
// tapped route (warm-up included). Run with -benchtime 1x.
//
//   - pg-refused: a postgres sink on 127.0.0.1:1, where nothing listens:
//     every batch fails at once and counts as errors.
//   - pg-hung: a postgres sink on a listener of the benchmark that accepts
//     and never answers: the first write hangs (until shutdown), the queue
//     (10 000) fills, and the rest is dropped.
//   - broker-undrained: a broker sink to a memory destination nobody
//     consumes: its memory queue holds 10 000 messages, then every publish
//     waits out broker.publish_timeout (5 s) and the tap's queue fills.
func BenchmarkTapDeadSink(b *testing.B) {
	for _, tc := range []struct {
		name string
		sink func(b *testing.B) node.TapSinkConfig
	}{
		{"pg-refused", func(b *testing.B) node.TapSinkConfig {
			return node.TapSinkConfig{Kind: "postgres", URL: "postgres://syncgate@127.0.0.1:1/test?sslmode=disable"}
		}},
		{"pg-hung", func(b *testing.B) node.TapSinkConfig {
			return node.TapSinkConfig{Kind: "postgres", URL: "postgres://syncgate@" + silentListener(b) + "/test?sslmode=disable"}
		}},
		{"broker-undrained", func(b *testing.B) node.TapSinkConfig {
			return node.TapSinkConfig{Kind: "broker", Destination: "tap.nobody"}
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			sink := tc.sink(b)
			sink.Name = "dead"
			n, plain, tapped := startTapBench(b, sink, nil)
			client := benchClient(b, tapClients)
			hammerTimed(b, client, plain, tapClients, 300*time.Millisecond)
			_, warm := hammerTimed(b, client, tapped, tapClients, 300*time.Millisecond)
			deadReqs := len(warm)
			pairedLatency(b, 5, "plain", "dead",
				func() (float64, []time.Duration) { return hammerTimed(b, client, plain, tapClients, tapPhase) },
				func() (float64, []time.Duration) {
					r, lat := hammerTimed(b, client, tapped, tapClients, tapPhase)
					deadReqs += len(lat)
					return r, lat
				}, tapPhase)
			b.ReportMetric(float64(deadReqs), "dead_reqs")
			reportTapCounts(b, n, sink.Name)
		})
	}
}

const (
	tapClients = 64
	tapPhase   = 2 * time.Second
)

// startTapBench starts a node with sink as its only tap sink and two echo
// routes alike but for a tap to it, and more's changes to the
// configuration (nil: none), and returns the node and their URLs.
// Its log drops the demo consumer's line for each tap message it is given
// (BenchmarkTap's broker drain); the rest is formatted and discarded, as
// start does.
func startTapBench(b *testing.B, sink node.TapSinkConfig, more func(*node.Config)) (n *running, plain, tapped string) {
	cfg := testConfig()
	cfg.Taps.Flush = 500 * time.Millisecond // a dead sink's queue is not waited for long
	cfg.Taps.Sinks = []node.TapSinkConfig{sink}
	cfg.Routes = append(cfg.Routes,
		node.RouteConfig{Name: "echo-plain", Method: "POST", Path: "/t/echo-plain", Destination: "demo.echo", Mode: "auto"},
		node.RouteConfig{Name: "echo-tapped", Method: "POST", Path: "/t/echo-tapped", Destination: "demo.echo", Mode: "auto",
			Tap: &node.RouteTapConfig{Sinks: []string{sink.Name}}})
	if more != nil {
		more(&cfg)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	log := slog.New(dropMessage{slog.NewTextHandler(io.Discard, nil), "dropping invalid request"})
	nd, err := node.New(cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	n = run(b, nd)
	return n, n.base + "/t/echo-plain", n.base + "/t/echo-tapped"
}

// benchClient is an HTTP client of `clients` keep-alive connections.
func benchClient(b *testing.B, clients int) *http.Client {
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: clients, MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients,
	}}
	b.Cleanup(client.CloseIdleConnections)
	return client
}

// dropMessage is a log handler that drops the records whose message is msg.
type dropMessage struct {
	slog.Handler
	msg string
}

func (h dropMessage) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h dropMessage) WithAttrs(as []slog.Attr) slog.Handler {
	return dropMessage{h.Handler.WithAttrs(as), h.msg}
}

func (h dropMessage) WithGroup(name string) slog.Handler {
	return dropMessage{h.Handler.WithGroup(name), h.msg}
}

// silentListener listens on loopback, accepts connections and never
// answers nor reads them, until the benchmark ends (after its node
// stopped: cleanups run last first); it returns its address.
func silentListener(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	b.Cleanup(func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// hammerTimed is hammer that also returns the latency of every request.
func hammerTimed(b *testing.B, client *http.Client, url string, clients int, d time.Duration) (float64, []time.Duration) {
	b.Helper()
	payload := []byte(`{"order":42,"amount":"12.50"}`)
	var failed atomic.Value
	var mu sync.Mutex
	var all []time.Duration
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 1024)
			defer func() {
				mu.Lock()
				all = append(all, lat...)
				mu.Unlock()
			}()
			for {
				t0 := time.Now()
				if !t0.Before(stop) {
					return
				}
				req, err := http.NewRequest("POST", url, bytes.NewReader(payload))
				if err != nil {
					failed.Store(err.Error())
					return
				}
				req.Header.Set("Content-Type", "application/json")
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
				lat = append(lat, time.Since(t0))
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f != nil {
		b.Fatalf("%s: %v", url, f)
	}
	return float64(len(all)) / time.Since(start).Seconds(), all
}

// pairedLatency runs phases of a and b, alternating, rounds of each per
// b.N, each returning its req/s and latencies, and reports, named an and
// bn, each one's req/s, p50 and p99 (in ms, over every request of its
// phases) and the ratios of b's to a's, and the process's CPU time per
// request of each and its ratio.
func pairedLatency(b *testing.B, rounds int, an, bn string, a, bf func() (float64, []time.Duration), phase time.Duration) {
	var aSum, bSum, aCPU, bCPU float64
	var aLat, bLat []time.Duration
	b.ResetTimer()
	for range b.N {
		for range rounds {
			c0 := processCPU(b)
			r, l := a()
			aCPU += processCPU(b) - c0
			aSum, aLat = aSum+r, append(aLat, l...)
			c0 = processCPU(b)
			r, l = bf()
			bCPU += processCPU(b) - c0
			bSum, bLat = bSum+r, append(bLat, l...)
		}
	}
	b.StopTimer()
	slices.Sort(aLat)
	slices.Sort(bLat)
	pct := func(l []time.Duration, p float64) float64 {
		if len(l) == 0 {
			return 0
		}
		return float64(l[min(len(l)-1, int(p*float64(len(l))))]) / 1e6
	}
	runs := float64(rounds * b.N)
	b.ReportMetric(aSum/runs, an+"_req/s")
	b.ReportMetric(bSum/runs, bn+"_req/s")
	b.ReportMetric(pct(aLat, 0.50), an+"_p50_ms")
	b.ReportMetric(pct(aLat, 0.99), an+"_p99_ms")
	b.ReportMetric(pct(bLat, 0.50), bn+"_p50_ms")
	b.ReportMetric(pct(bLat, 0.99), bn+"_p99_ms")
	b.ReportMetric(pct(bLat, 0.50)/pct(aLat, 0.50), "p50_"+bn+"/"+an)
	b.ReportMetric(pct(bLat, 0.99)/pct(aLat, 0.99), "p99_"+bn+"/"+an)
	aPer, bPer := aCPU/float64(len(aLat)), bCPU/float64(len(bLat))
	b.ReportMetric(aPer*1e6, an+"_cpu_µs/req")
	b.ReportMetric(bPer*1e6, bn+"_cpu_µs/req")
	b.ReportMetric(bPer/aPer, "cpu_"+bn+"/"+an)
	b.ReportMetric(0, "ns/op")
}

// tapMetric returns the value of the node's tap metric name (a counter or
// a gauge) for sink, 0 when there is none yet.
func tapMetric(b *testing.B, n *running, name, sink string) float64 {
	fams, err := n.Metrics().Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "sink" && l.GetValue() == sink {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

// reportTapCounts reports what sink wrote, dropped, failed to write
// (exchanges of failed batches) and holds still.
func reportTapCounts(b *testing.B, n *running, sink string) {
	b.ReportMetric(tapMetric(b, n, "syncgate_tap_written_total", sink), "written")
	b.ReportMetric(tapMetric(b, n, "syncgate_tap_dropped_total", sink), "dropped")
	b.ReportMetric(tapMetric(b, n, "syncgate_tap_errors_total", sink), "errors")
	b.ReportMetric(tapMetric(b, n, "syncgate_tap_queued", sink), "queued")
}

// postgresCPU returns the CPU time of every process of the machine
// named postgres (the server's backends and helpers), user+system in
// seconds by pid, from /proc at 100 ticks a second.
func postgresCPU(b *testing.B) map[int]float64 {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	cpu := map[int]float64{}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue // ended meanwhile
		}
		// pid (comm) state ppid ...: utime and stime are the 14th and 15th
		// fields, the 12th and 13th after the comm.
		s := string(stat)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open || s[open+1:end] != "postgres" {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		cpu[pid] = (u + st) / 100
	}
	return cpu
}

// postgresCPUSince returns the CPU time the postgres processes used since
// before (postgresCPU's), in seconds: of those alive now, what they used
// since before or since they started (a process that ended meanwhile is
// not counted).
func postgresCPUSince(b *testing.B, before map[int]float64) float64 {
	var d float64
	for pid, t := range postgresCPU(b) {
		d += t - before[pid]
	}
	return d
}
