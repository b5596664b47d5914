package api_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/api/middleware"
	"github.com/syncgate/syncgate/gateway"
	"github.com/syncgate/syncgate/ratelimit"
)

// countingGateway counts the requests that reached the use case.
func countingGateway() (*stub, *atomic.Int32) {
	var n atomic.Int32
	gw := principalGateway()
	do := gw.do
	gw.do = func(ctx context.Context, req *gateway.Request) (gateway.Outcome, error) {
		n.Add(1)
		return do(ctx, req)
	}
	return gw, &n
}

func alice() map[string]string { return map[string]string{"Authorization": "Bearer alice-key-1"} }
func bob() map[string]string   { return map[string]string{"Authorization": "Bearer bob-key-2"} }

// limited is the test's API: alice and bob's keys, a default limit of
// rate per hour with burst, and the routes /r (default limit), /own (its
// own limit, 1 per hour) and /free (exempt).
func limited(t *testing.T, gw api.Gateway, rate, burst int, mod func(*api.Options)) http.Handler {
	t.Helper()
	own := testRoute("/own", gateway.ModeSync)
	own.RateLimit = &ratelimit.Limit{Rate: 1, Per: time.Hour, Burst: 1}
	free := testRoute("/free", gateway.ModeSync)
	free.NoRateLimit = true
	return newHandler(t, gw, func(o *api.Options) {
		o.Auth = keysAuth(t)
		o.RateLimit = &ratelimit.Limit{Rate: rate, Per: time.Hour, Burst: burst}
		o.Routes = []api.Route{testRoute("/r", gateway.ModeSync), own, free}
		if mod != nil {
			mod(o)
		}
	})
}

func TestRateLimitBurstThen429(t *testing.T) {
	gw, reached := countingGateway()
	h := limited(t, gw, 1, 3, nil)
	for i := range 3 {
		rec := serve(h, "POST", "/r", "x", alice())
		if rec.Code != 200 {
			t.Fatalf("request %d: %d %s", i+1, rec.Code, rec.Body)
		}
		if got, want := rec.Header().Get("RateLimit-Policy"), `"default";q=1;w=3600;syncgate-burst=3`; got != want {
			t.Errorf("RateLimit-Policy %q, want %q", got, want)
		}
		// i+1 tokens used, each back after an hour.
		if got, want := rec.Header().Get("RateLimit"), `"default";r=`+itoa(2-i)+";t="+itoa(3600*(i+1)); got != want {
			t.Errorf("request %d: RateLimit %q, want %q", i+1, got, want)
		}
	}
	rec := serve(h, "POST", "/r", "x", alice())
	p := wantProblem(t, rec, api.ProblemRateLimited)
	if p.Type != "urn:syncgate:problem:rate-limited" || rec.Code != 429 || strings.Contains(p.Detail, "alice") {
		t.Errorf("problem %+v", p)
	}
	if got := rec.Header().Get("Retry-After"); got != "3600" {
		t.Errorf("Retry-After %q, want 3600 (one token, an hour)", got)
	}
	if got, want := rec.Header().Get("RateLimit"), `"default";r=0;t=3600`; got != want {
		t.Errorf("RateLimit %q, want %q", got, want)
	}
	if rec.Header().Get("RateLimit-Policy") == "" {
		t.Error("429 without RateLimit-Policy")
	}
	if n := reached.Load(); n != 3 {
		t.Errorf("%d requests reached the gateway, want 3: a refused one is not published", n)
	}
	// The default bucket is alice's on every route without its own limit,
	// polls included.
	wantProblem(t, serve(h, "GET", "/v1/requests/0190a8f8-6d6b-7c4e-9a4e-3c2b1a0f9e8d", "x", alice()), api.ProblemRateLimited)
}

func TestRateLimitBucketPerPrincipal(t *testing.T) {
	gw, _ := countingGateway()
	h := limited(t, gw, 1, 1, nil)
	if rec := serve(h, "POST", "/r", "x", alice()); rec.Code != 200 {
		t.Fatalf("alice: %d", rec.Code)
	}
	wantProblem(t, serve(h, "POST", "/r", "x", alice()), api.ProblemRateLimited)
	rec := serve(h, "POST", "/r", "x", bob())
	if rec.Code != 200 || rec.Body.String() != "principal=bob" {
		t.Fatalf("bob after alice's limit: %d %s", rec.Code, rec.Body)
	}
}

func TestRateLimitRetryAfterRoundsUp(t *testing.T) {
	for _, tc := range []struct {
		limit ratelimit.Limit
		want  string
	}{
		{ratelimit.Limit{Rate: 1, Per: time.Minute, Burst: 1}, "60"},
		{ratelimit.Limit{Rate: 3, Per: 10 * time.Second, Burst: 1}, "4"}, // 3.33s
		{ratelimit.Limit{Rate: 100, Per: time.Second, Burst: 1}, "1"},    // 10ms
	} {
		gw, _ := countingGateway()
		h := limited(t, gw, 1, 1, func(o *api.Options) { o.RateLimit = &tc.limit })
		serve(h, "POST", "/r", "x", alice())
		rec := serve(h, "POST", "/r", "x", alice())
		if rec.Code != 429 || rec.Header().Get("Retry-After") != tc.want {
			t.Errorf("%+v: %d, Retry-After %q, want 429 with %s", tc.limit, rec.Code, rec.Header().Get("Retry-After"), tc.want)
		}
		if got := rec.Header().Get("RateLimit"); !strings.HasSuffix(got, ";r=0;t="+tc.want) {
			t.Errorf("%+v: RateLimit %q, want t=%s like Retry-After", tc.limit, got, tc.want)
		}
	}
}

func TestRateLimitRouteOwnAndExempt(t *testing.T) {
	gw, _ := countingGateway()
	reg := prometheus.NewRegistry()
	h := limited(t, gw, 1, 1, func(o *api.Options) { o.Registerer = reg })
	// /own has its own bucket: the default one is untouched.
	if rec := serve(h, "POST", "/own", "x", alice()); rec.Code != 200 || rec.Header().Get("RateLimit") != `"own";r=0;t=3600` {
		t.Fatalf("/own: %d RateLimit %q", rec.Code, rec.Header().Get("RateLimit"))
	}
	rec := serve(h, "POST", "/own", "x", alice())
	wantProblem(t, rec, api.ProblemRateLimited)
	if got := rec.Header().Get("RateLimit-Policy"); got != `"own";q=1;w=3600;syncgate-burst=1` {
		t.Errorf("/own RateLimit-Policy %q", got)
	}
	if rec := serve(h, "POST", "/r", "x", alice()); rec.Code != 200 {
		t.Fatalf("/r after /own's limit: %d", rec.Code)
	}
	wantProblem(t, serve(h, "POST", "/r", "x", alice()), api.ProblemRateLimited)
	for range 5 {
		rec := serve(h, "POST", "/free", "x", alice())
		if rec.Code != 200 || rec.Header().Get("RateLimit") != "" {
			t.Fatalf("/free: %d RateLimit %q, want 200 without a limit", rec.Code, rec.Header().Get("RateLimit"))
		}
	}
	for route, want := range map[string]float64{"/own": 1, "/r": 1, "/free": 0} {
		if got := rateLimited(t, reg, route); got != want {
			t.Errorf("syncgate_http_rate_limited_total{route=%q} = %v, want %v", route, got, want)
		}
	}
}

// Anonymous callers are limited by their IP address, never by a header
// they can set.
func TestRateLimitAnonymousByAddress(t *testing.T) {
	gw, _ := countingGateway()
	o := limited(t, gw, 1, 1, func(o *api.Options) {
		o.Routes[0].Auth = middleware.AuthOptional
	})
	h := o
	from := func(addr, xff string) int {
		req := httptest.NewRequest("POST", "/r", strings.NewReader("x"))
		req.RemoteAddr = addr
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if c := from("192.0.2.1:1111", ""); c != 200 {
		t.Fatalf("first from 192.0.2.1: %d", c)
	}
	if c := from("192.0.2.1:2222", "198.51.100.9"); c != 429 {
		t.Fatalf("same address, another port and an X-Forwarded-For: %d, want 429", c)
	}
	if c := from("192.0.2.2:1111", ""); c != 200 {
		t.Fatalf("another address: %d, want its own bucket", c)
	}
	if c := from("192.0.2.3:1111", ""); c != 200 {
		t.Fatalf("a third address: %d", c)
	}
	req := httptest.NewRequest("POST", "/r", strings.NewReader("x"))
	req.RemoteAddr = "192.0.2.3:1111"
	req.Header.Set("Authorization", "Bearer alice-key-1")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("alice from a limited address: %d, want her own bucket", rec.Code)
	}
}

// The limit is decided before the body is read.
func TestRateLimitRefusesBeforeReadingTheBody(t *testing.T) {
	gw, _ := countingGateway()
	h := limited(t, gw, 1, 1, nil)
	serve(h, "POST", "/r", "x", alice())
	body := &readCounter{r: strings.NewReader("payload")}
	req := httptest.NewRequest("POST", "/r", body)
	req.Header.Set("Authorization", "Bearer alice-key-1")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	wantProblem(t, rec, api.ProblemRateLimited)
	if body.n.Load() != 0 {
		t.Fatalf("the body was read %d times before the 429", body.n.Load())
	}
}

type failingLimiter struct{}

func (failingLimiter) Allow(context.Context, string, ratelimit.Limit) (ratelimit.Decision, error) {
	return ratelimit.Decision{}, errors.New("limiter down")
}

// A limiter that cannot decide lets requests through (redislimit never
// gets here: it decides with the node's limiter instead).
func TestRateLimiterErrorLetsThrough(t *testing.T) {
	gw, reached := countingGateway()
	h := limited(t, gw, 1, 1, func(o *api.Options) { o.RateLimiter = failingLimiter{} })
	for range 3 {
		if rec := serve(h, "POST", "/r", "x", alice()); rec.Code != 200 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
	if reached.Load() != 3 {
		t.Fatalf("%d reached the gateway", reached.Load())
	}
}

func TestRateLimitConfigRefused(t *testing.T) {
	for name, l := range map[string]ratelimit.Limit{
		"sub-second window": {Rate: 1, Per: 1500 * time.Millisecond, Burst: 1},
		"no burst":          {Rate: 1, Per: time.Second},
		"no rate":           {Per: time.Second, Burst: 1},
	} {
		if _, err := api.New(api.Options{Gateway: &stub{}, RateLimit: &l, Routes: []api.Route{testRoute("/r", gateway.ModeSync)}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

type readCounter struct {
	r io.Reader
	n atomic.Int32
}

func (c *readCounter) Read(p []byte) (int, error) {
	c.n.Add(1)
	return c.r.Read(p)
}

func itoa(i int) string { return strconv.Itoa(i) }

// rateLimited reads syncgate_http_rate_limited_total{route}.
func rateLimited(t *testing.T, reg *prometheus.Registry, route string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != "syncgate_http_rate_limited_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" && l.GetValue() == route {
					v += m.GetCounter().GetValue()
				}
			}
		}
	}
	return v
}

// Guessing keys is throttled: a refused credential counts against its
// client address's bucket under the default limit (401 until it is empty,
// then 429), so does an anonymous request from that address, and an
// authenticated caller from the same address keeps its own bucket.
func TestRefusedCredentialsAreRateLimited(t *testing.T) {
	gw, _ := countingGateway()
	h := limited(t, gw, 1, 2, nil)
	wrong := map[string]string{"Authorization": "Bearer guess"}
	for i := range 2 {
		rec := serve(h, "POST", "/r", "x", wrong)
		if rec.Code != http.StatusUnauthorized || rec.Header().Get("RateLimit") == "" {
			t.Fatalf("guess %d: %d %q, want 401 with RateLimit", i+1, rec.Code, rec.Header().Get("RateLimit"))
		}
	}
	rec := serve(h, "POST", "/r", "x", wrong)
	wantProblem(t, rec, api.ProblemRateLimited)
	if rec.Header().Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if rec := serve(h, "POST", "/r", "x", alice()); rec.Code != 200 {
		t.Errorf("alice from the same address: %d, want 200 (her own bucket)", rec.Code)
	}
}
