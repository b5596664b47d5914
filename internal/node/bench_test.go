package node_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/responder/demo"
	"github.com/syncgate/syncgate/internal/node"
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

	var directSum, gatewaySum float64
	const rounds = 3
	b.ResetTimer()
	for range b.N {
		for range rounds {
			directSum += hammer(b, client, direct.URL, clients, phase)
			gatewaySum += hammer(b, client, n.base+"/demo/echo", clients, phase)
		}
	}
	b.StopTimer()
	runs := float64(rounds * b.N)
	b.ReportMetric(directSum/runs, "direct_req/s")
	b.ReportMetric(gatewaySum/runs, "gateway_req/s")
	b.ReportMetric(gatewaySum/directSum, "gateway/direct")
	b.ReportMetric(0, "ns/op")
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
	var noneSum, keySum, noneCPU, keyCPU, noneN, keyN float64
	const rounds = 5
	b.ResetTimer()
	for range b.N {
		for range rounds {
			c0 := processCPU(b)
			r := hammerAs(b, client, none, key, clients, phase)
			noneCPU += processCPU(b) - c0
			noneSum, noneN = noneSum+r, noneN+r*phase.Seconds()
			c0 = processCPU(b)
			r = hammerAs(b, client, keyd, key, clients, phase)
			keyCPU += processCPU(b) - c0
			keySum, keyN = keySum+r, keyN+r*phase.Seconds()
		}
	}
	b.StopTimer()
	runs := float64(rounds * b.N)
	b.ReportMetric(noneSum/runs, "none_req/s")
	b.ReportMetric(keySum/runs, "apikey_req/s")
	b.ReportMetric(keySum/noneSum, "apikey/none")
	b.ReportMetric(noneCPU/noneN*1e6, "none_cpu_µs/req")
	b.ReportMetric(keyCPU/keyN*1e6, "apikey_cpu_µs/req")
	b.ReportMetric((keyCPU/keyN)/(noneCPU/noneN), "cpu_apikey/none")
	b.ReportMetric(0, "ns/op")
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
