package loadtest_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncgate/syncgate/loadtest"
)

// handlerTransport serves requests with an http.Handler in the caller's
// goroutine: inside a synctest bubble the handler's time.Sleep is fake
// time, so latencies are exact.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	return rec.Result(), nil
}

func fakeTarget(h http.HandlerFunc) loadtest.Target {
	return loadtest.Target{Client: &http.Client{Transport: handlerTransport{h}}, URL: "http://fake/x"}
}

func delay(d time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { time.Sleep(d) }
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

func TestOpenLoopPacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		res, err := loadtest.Run(t.Context(), loadtest.Config{
			Rate: 100, Duration: time.Second, Warmup: 200 * time.Millisecond,
		}, fakeTarget(delay(10*time.Millisecond)).Op())
		if err != nil {
			t.Fatal(err)
		}
		// 100/s for 1 s after the warm-up: exactly 100 measured requests,
		// each 10 ms, none queued.
		if res.Requests != 100 || res.Status["200"] != 100 || res.Errors != 0 {
			t.Fatalf("requests %d, statuses %v, errors %d; want 100 × 200", res.Requests, res.Status, res.Errors)
		}
		if res.Mode != "open" || !near(res.Throughput, 100, 2) {
			t.Errorf("mode %s, throughput %.2f/s; want open, 100/s", res.Mode, res.Throughput)
		}
		if !near(res.Latency.P50, 10, 0.02) || !near(res.Latency.Max, 10, 0.02) {
			t.Errorf("latency %+v; want 10 ms throughout", res.Latency)
		}
		// The default bucket of a 1 s run is 20 ms: 50 points of 2.
		if len(res.Series) != 50 {
			t.Errorf("series of %d points; want 50 buckets of 20 ms", len(res.Series))
		}
		for _, p := range res.Series {
			if p.Count != 2 {
				t.Errorf("series %+v; want 2 requests in every bucket", res.Series)
				break
			}
		}
	})
}

// A server that stalls once: an open-loop generator with one request in
// flight must charge the queueing to every request due during the stall
// (latency from the intended send time), not just to the stalled one.
func TestOpenLoopMeasuresFromIntendedTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int64
		h := func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				time.Sleep(500 * time.Millisecond)
				return
			}
			time.Sleep(time.Millisecond)
		}
		res, err := loadtest.Run(t.Context(), loadtest.Config{
			Rate: 100, Workers: 1, Duration: time.Second,
		}, fakeTarget(h).Op())
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests != 100 {
			t.Fatalf("requests %d, want 100", res.Requests)
		}
		// Request k (k ≥ 1) is due at 10k ms and done at 500+k ms until the
		// generator has caught up (k = 56): latency 500−9k ms.
		if !near(res.Latency.Max, 500, 1) {
			t.Errorf("max %.2f ms, want 500", res.Latency.Max)
		}
		if !near(res.Latency.P50, 50, 1) {
			t.Errorf("p50 %.2f ms, want 50 (request 50: 500 − 450)", res.Latency.P50)
		}
		// What a closed-loop tool would have reported.
		if !near(res.ServiceTime.P50, 1, 0.01) || !near(res.ServiceTime.P90, 1, 0.01) {
			t.Errorf("service time %+v; want 1 ms up to p90", res.ServiceTime)
		}
	})
}

func TestClosedLoopWorkersAndBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		res, err := loadtest.Run(t.Context(), loadtest.Config{
			Workers: 4, Duration: time.Second, Warmup: 100 * time.Millisecond,
		}, fakeTarget(delay(10*time.Millisecond)).Op())
		if err != nil {
			t.Fatal(err)
		}
		// 4 workers × 10 ms each for 1 s.
		if res.Mode != "closed" || res.Requests != 400 || !near(res.Throughput, 400, 5) {
			t.Errorf("mode %s, %d requests, %.1f/s; want closed, 400, 400/s", res.Mode, res.Requests, res.Throughput)
		}
		res, err = loadtest.Run(t.Context(), loadtest.Config{
			Workers: 4, Duration: time.Hour, Requests: 10,
		}, fakeTarget(delay(10*time.Millisecond)).Op())
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests != 10 {
			t.Errorf("%d requests, want the cap of 10", res.Requests)
		}
		res, err = loadtest.Run(t.Context(), loadtest.Config{
			Rate: 1000, Duration: time.Hour, Requests: 25,
		}, fakeTarget(delay(time.Millisecond)).Op())
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests != 25 {
			t.Errorf("open loop: %d requests, want the cap of 25", res.Requests)
		}
	})
}

func TestWarmupExcluded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		h := func(w http.ResponseWriter, r *http.Request) {
			if time.Since(start) < 300*time.Millisecond {
				w.WriteHeader(http.StatusServiceUnavailable)
				time.Sleep(100 * time.Millisecond)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		res, err := loadtest.Run(t.Context(), loadtest.Config{
			Rate: 50, Warmup: 300 * time.Millisecond, Duration: time.Second,
		}, fakeTarget(h).Op())
		if err != nil {
			t.Fatal(err)
		}
		if res.Status["503"] != 0 || res.Status["200"] != 50 || res.Latency.Max > 5.01 {
			t.Errorf("statuses %v, max %.2f ms: the warm-up leaked into the result", res.Status, res.Latency.Max)
		}
	})
}

func TestPercentilesAndCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int64
		// Request i takes (i mod 100)+1 ms; every 10th is a 503; every
		// 25th fails in the transport.
		h := func(w http.ResponseWriter, r *http.Request) {
			i := n.Add(1) - 1
			time.Sleep(time.Duration(i%100+1) * time.Millisecond)
			if i%10 == 9 {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}
		var calls atomic.Int64
		target := fakeTarget(h).Op()
		op := func(ctx context.Context) (int, error) {
			if calls.Add(1)%25 == 0 {
				return 0, errors.New("connection refused")
			}
			return target(ctx)
		}
		res, err := loadtest.Run(t.Context(), loadtest.Config{Workers: 1, Requests: 1000, Duration: time.Hour}, op)
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests != 1000 || res.Errors != 40 || res.ErrorCounts["connection refused"] != 40 {
			t.Fatalf("requests %d errors %d %v; want 1000, 40", res.Requests, res.Errors, res.ErrorCounts)
		}
		if res.Status["200"]+res.Status["503"] != 960 || res.Status["503"] != 96 {
			t.Errorf("statuses %v; want 864 × 200, 96 × 503", res.Status)
		}
		// The 40 transport errors are recorded at ~0; the 960 served
		// requests take 1..60 ms ten times each and 61..100 ms nine times:
		// the 500th value overall is 46 ms, the 900th 89, the 990th 99.
		for _, c := range []struct {
			name      string
			got, want float64
		}{
			{"p50", res.Latency.P50, 46}, {"p90", res.Latency.P90, 89},
			{"p99", res.Latency.P99, 99}, {"p99.9", res.Latency.P999, 100}, {"max", res.Latency.Max, 100},
		} {
			if !near(c.got, c.want, 1.5) {
				t.Errorf("%s = %.2f ms, want %.0f ± 1.5", c.name, c.got, c.want)
			}
		}
		last := res.Percentiles[len(res.Percentiles)-1]
		if last.Quantile != 100 || last.Ms != res.Latency.Max {
			t.Errorf("spectrum ends at %+v, want the max", last)
		}
	})
}

// Against a real server on loopback, with assertions that hold on a busy
// machine: the schedule fixes the request count, and a stall is charged to
// the requests queued behind it.
func TestRealServer(t *testing.T) {
	var mu sync.Mutex
	first := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		stall := first
		first = false
		mu.Unlock()
		if stall {
			<-time.After(600 * time.Millisecond) // a known delay, not synchronisation
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	client := loadtest.NewClient(1)
	t.Cleanup(client.CloseIdleConnections)
	res, err := loadtest.Run(t.Context(), loadtest.Config{Rate: 100, Workers: 1, Duration: time.Second, Timeout: 10 * time.Second},
		loadtest.Target{Client: client, URL: srv.URL}.Op())
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 100 || res.Status["200"] != 100 {
		t.Fatalf("requests %d statuses %v; want 100 × 200", res.Requests, res.Status)
	}
	if res.Latency.Max < 600 {
		t.Errorf("max %.1f ms, want ≥ 600 (the stall)", res.Latency.Max)
	}
	// About 60 requests were due during the stall; half the requests
	// waited tens of milliseconds, whatever their service time.
	if res.Latency.P50 < 20 || res.Latency.P50 < 5*res.ServiceTime.P50 {
		t.Errorf("p50 %.2f ms (service time p50 %.2f ms): queueing behind the stall not charged", res.Latency.P50, res.ServiceTime.P50)
	}
}

func TestPollOp(t *testing.T) {
	var polls atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /start", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "/result/1")
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /result/1", func(w http.ResponseWriter, r *http.Request) {
		if polls.Add(1) < 3 {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		_, _ = w.Write([]byte("done"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	var stats loadtest.PollStats
	op := loadtest.Target{URL: srv.URL + "/start", Body: []byte("x")}.PollOp(time.Millisecond, 10, &stats)
	status, err := op(t.Context())
	if err != nil || status != http.StatusOK {
		t.Fatalf("status %d err %v, want 200", status, err)
	}
	if stats.Accepted.Load() != 1 || stats.Polls.Load() != 3 {
		t.Errorf("accepted %d polls %d, want 1 and 3", stats.Accepted.Load(), stats.Polls.Load())
	}
	polls.Store(-100)
	if status, err := op(t.Context()); err == nil || status != http.StatusAccepted {
		t.Errorf("status %d err %v, want 202 and an error after 10 polls", status, err)
	}
}

func TestSamples(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintf(w, "answer %d", n.Load())
	}))
	t.Cleanup(srv.Close)
	s := new(loadtest.Samples)
	op := loadtest.Target{URL: srv.URL, Samples: s}.Op()
	for range 3 {
		if _, err := op(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Get(); len(got) != 1 || got[503] != "answer 2" {
		t.Errorf("samples %v, want only the first 503", got)
	}
}

func TestConfigValidate(t *testing.T) {
	_, err := loadtest.Run(t.Context(), loadtest.Config{Rate: -1, Requests: -2}, nil)
	if !errors.Is(err, loadtest.ErrConfig) {
		t.Fatalf("err %v, want ErrConfig", err)
	}
}
