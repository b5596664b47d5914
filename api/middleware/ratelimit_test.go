package middleware_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/syncgate/syncgate/api/middleware"
	"github.com/syncgate/syncgate/ratelimit"
)

// recordingLimiter admits everything and records the keys it was asked.
type recordingLimiter struct{ keys []string }

func (l *recordingLimiter) Allow(_ context.Context, key string, _ ratelimit.Limit) (ratelimit.Decision, error) {
	l.keys = append(l.keys, key)
	return ratelimit.Decision{Allowed: true, Remaining: 4, ResetAfter: 1500 * time.Millisecond}, nil
}

func TestRateLimitKeysAndHeaders(t *testing.T) {
	lim := ratelimit.Limit{Rate: 5, Per: time.Second, Burst: 5}
	for _, tc := range []struct {
		name, policy, principal, remote string
		key, header                     string
	}{
		{"principal", "default", "alice", "192.0.2.1:5", "default:p:alice", `"default";r=4;t=2`},
		{"anonymous by address", "default", "", "192.0.2.1:5", "default:ip:192.0.2.1", `"default";r=4;t=2`},
		{"IPv6", "default", "", "[2001:db8::1]:443", "default:ip:2001:db8::1", `"default";r=4;t=2`},
		// A policy name cannot make two callers' keys meet: "a:p" with
		// principal "x" is not policy "a" with principal "p:x".
		{"name with a colon", "a:p", "x", "", "a%3Ap:p:x", `"a:p";r=4;t=2`},
		{"name to escape", `say "hi" \ ünï`, "x", "", "say+%22hi%22+%5C+%C3%BCn%C3%AF:p:x", `"say \"hi\" \\ ??n??";r=4;t=2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &recordingLimiter{}
			h := middleware.RateLimit(l, middleware.RateLimitPolicy{Name: tc.policy, Limit: lim}, nil)(
				http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = tc.remote
			if tc.principal != "" {
				req = req.WithContext(middleware.WithPrincipal(req.Context(), tc.principal))
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusNoContent || len(l.keys) != 1 || l.keys[0] != tc.key {
				t.Fatalf("%d, keys %q, want one %q", rec.Code, l.keys, tc.key)
			}
			if got := rec.Header().Get("RateLimit"); got != tc.header {
				t.Errorf("RateLimit %q, want %q", got, tc.header)
			}
		})
	}
}

// A principal's requests are admitted up to the burst, then refused with
// the draft's headers.
func ExampleRateLimit() {
	limiter := ratelimit.NewMemory(ratelimit.MemoryConfig{})
	policy := middleware.RateLimitPolicy{Name: "default", Limit: ratelimit.Limit{Rate: 1, Per: time.Minute, Burst: 2}}
	h := middleware.RateLimit(limiter, policy, func(w http.ResponseWriter, _ *http.Request, d ratelimit.Decision) {
		w.Header().Set("Retry-After", fmt.Sprint(int(d.RetryAfter.Round(time.Second).Seconds())))
		w.WriteHeader(http.StatusTooManyRequests)
	})(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	for range 3 {
		req := httptest.NewRequest("GET", "/", nil)
		req = req.WithContext(middleware.WithPrincipal(req.Context(), "alice"))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(rec.Code, rec.Header().Get("RateLimit"), rec.Header().Values("Retry-After"))
	}
	// Output:
	// 200 "default";r=1;t=60 []
	// 200 "default";r=0;t=120 []
	// 429 "default";r=0;t=60 [60]
}
