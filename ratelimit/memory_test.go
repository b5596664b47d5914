package ratelimit_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncgate/syncgate/ratelimit"
	"github.com/syncgate/syncgate/ratelimit/ratelimittest"
)

func TestMemory(t *testing.T) {
	ratelimittest.Run(t, func(*testing.T) ratelimit.Limiter { return ratelimit.NewMemory(ratelimit.MemoryConfig{}) })
}

// Idle callers are forgotten once their bucket is full again, and the map
// never holds more than MaxKeys however many callers there are.
func TestMemoryIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := ratelimit.NewMemory(ratelimit.MemoryConfig{MaxKeys: 5000})
		lim := ratelimit.Limit{Rate: 10, Per: time.Second, Burst: 5}
		for i := range 2000 {
			_, _ = m.Allow(t.Context(), fmt.Sprint("idle-", i), lim)
		}
		time.Sleep(time.Second) // fake time: every bucket refills
		for i := range 2000 {
			_, _ = m.Allow(t.Context(), fmt.Sprint("busy-", i), lim)
		}
		if n := m.Len(); n > 2000+1 {
			t.Fatalf("%d keys held after the idle ones refilled, want the 2000 busy ones (and at most the one that swept)", n)
		}
		for i := range 20_000 {
			_, _ = m.Allow(t.Context(), fmt.Sprint("flood-", i), lim)
			if n := m.Len(); n > 5000 {
				t.Fatalf("%d keys held, above MaxKeys 5000", n)
			}
		}
	})
}

// An evicted bucket was full: its caller is not given a new burst early.
func TestMemoryEvictsOnlyFullBucketsFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := ratelimit.NewMemory(ratelimit.MemoryConfig{MaxKeys: 10_000})
		lim := ratelimit.Limit{Rate: 1, Per: time.Hour, Burst: 1}
		if d, _ := m.Allow(t.Context(), "alice", lim); !d.Allowed {
			t.Fatal("first request refused")
		}
		for i := range 3000 { // several sweeps
			_, _ = m.Allow(t.Context(), fmt.Sprint("other-", i), lim)
		}
		if d, _ := m.Allow(t.Context(), "alice", lim); d.Allowed {
			t.Fatal("alice's empty bucket was swept: admitted again within the hour")
		}
	})
}
