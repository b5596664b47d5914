// Package ratelimittest is the suite every ratelimit.Limiter passes: the
// in-memory one and the Redis one run the same tests.
package ratelimittest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/testenv"
	"github.com/syncgate/syncgate/ratelimit"
)

// Run runs the suite on the limiters newLimiter returns (one per subtest;
// keys are unique to the subtest, but a limiter may be shared).
func Run(t *testing.T, newLimiter func(t *testing.T) ratelimit.Limiter) {
	t.Run("BurstThenRefused", func(t *testing.T) {
		l, key := newLimiter(t), t.Name()
		lim := ratelimit.Limit{Rate: 1, Per: time.Hour, Burst: 3}
		for i := range 3 {
			d := allow(t, l, key, lim)
			if !d.Allowed || d.Remaining != 2-i || d.RetryAfter > 0 {
				t.Fatalf("request %d: %+v, want allowed with %d remaining", i+1, d, 2-i)
			}
			// i+1 tokens used, each back after an hour.
			if want := time.Duration(i+1) * time.Hour; d.ResetAfter < want-time.Second || d.ResetAfter > want {
				t.Errorf("request %d: ResetAfter %s, want about %s", i+1, d.ResetAfter, want)
			}
		}
		d := allow(t, l, key, lim)
		if d.Allowed || d.Remaining != 0 {
			t.Fatalf("request 4: %+v, want refused", d)
		}
		if d.RetryAfter < time.Hour-time.Second || d.RetryAfter > time.Hour {
			t.Errorf("request 4: RetryAfter %s, want about 1h (one token)", d.RetryAfter)
		}
	})
	t.Run("KeysAreIndependent", func(t *testing.T) {
		l := newLimiter(t)
		lim := ratelimit.Limit{Rate: 1, Per: time.Hour, Burst: 2}
		for range 3 {
			allow(t, l, t.Name()+"/a", lim)
		}
		if d := allow(t, l, t.Name()+"/b", lim); !d.Allowed || d.Remaining != 1 {
			t.Fatalf("key b after key a's burst: %+v, want allowed with 1 remaining", d)
		}
	})
	t.Run("RefillsAfterRetryAfter", func(t *testing.T) {
		l, key := newLimiter(t), t.Name()
		lim := ratelimit.Limit{Rate: 10, Per: time.Second, Burst: 1}
		if d := allow(t, l, key, lim); !d.Allowed {
			t.Fatalf("first request refused: %+v", d)
		}
		refused := allow(t, l, key, lim)
		at := time.Now()
		if refused.Allowed || refused.RetryAfter <= 0 || refused.RetryAfter > 100*time.Millisecond {
			t.Fatalf("second request at once: %+v, want refused with RetryAfter in (0, 100ms]", refused)
		}
		var again time.Duration
		testenv.Eventually(t, 2*time.Second, "a request is admitted again", func() bool {
			if allow(t, l, key, lim).Allowed {
				again = time.Since(at)
				return true
			}
			return false
		})
		// Clocks differ (Redis has its own): a few ms of slack.
		if again < refused.RetryAfter-10*time.Millisecond {
			t.Errorf("admitted again after %s, before RetryAfter %s", again, refused.RetryAfter)
		}
	})
	t.Run("ConcurrentCallersShareTheBurst", func(t *testing.T) {
		l, key := newLimiter(t), t.Name()
		lim := ratelimit.Limit{Rate: 1, Per: time.Hour, Burst: 10}
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			allowed int
		)
		for range 50 {
			wg.Go(func() {
				d, err := l.Allow(t.Context(), key, lim)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if allowed != lim.Burst {
			t.Fatalf("%d of 50 concurrent requests admitted, want exactly the burst, %d", allowed, lim.Burst)
		}
	})
}

func allow(t *testing.T, l ratelimit.Limiter, key string, lim ratelimit.Limit) ratelimit.Decision {
	t.Helper()
	d, err := l.Allow(t.Context(), key, lim)
	if err != nil {
		t.Fatal(fmt.Errorf("Allow(%q): %w", key, err))
	}
	return d
}
