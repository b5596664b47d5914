package correlation

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
)

// checkIndex verifies that the map, the age list and the expiry heap hold
// the same records and that the heap is ordered.
func checkIndex(t *testing.T, s *MemoryStore) {
	t.Helper()
	n := 0
	var prev *record
	for r := s.age.oldest; r != nil; r = r.next {
		if r.prev != prev {
			t.Fatalf("age list: %s.prev is broken", r.id)
		}
		if s.items[r.id] != r {
			t.Fatalf("age list holds %s, the map does not", r.id)
		}
		prev = r
		if n++; n > len(s.items) {
			t.Fatalf("age list longer than the map (%d)", len(s.items))
		}
	}
	if s.age.newest != prev || n != len(s.items) || len(s.expiry) != n {
		t.Fatalf("map %d, age list %d, heap %d records", len(s.items), n, len(s.expiry))
	}
	for i, it := range s.expiry {
		if it.r.index != i || s.items[it.r.id] != it.r {
			t.Fatalf("heap[%d] = %s with index %d", i, it.r.id, it.r.index)
		}
		if it.expires != expiryKey(it.r.Expires) {
			t.Fatalf("heap[%d] key is stale", i)
		}
		if i > 0 && it.expires < s.expiry[(i-1)/2].expires {
			t.Fatalf("heap[%d] expires before its parent", i)
		}
	}
}

// TestMemoryStoreIndex runs random operations, with random TTLs and clock
// steps, and checks the store's internal orders after each one.
func TestMemoryStoreIndex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		const max = 50
		s := NewMemoryStore(MemoryStoreConfig{MaxEntries: max, ResultTTL: 30 * time.Second})
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range 20_000 {
			id := fmt.Sprint(rng.IntN(120))
			switch op := rng.IntN(10); {
			case op < 4:
				_ = s.Pending(ctx, id, time.Duration(rng.IntN(60)+1)*time.Second)
			case op < 7:
				_ = s.Complete(ctx, envelope.Reply{CorrelationID: id})
			case op < 8:
				_ = s.Delete(ctx, id)
			default:
				if res, err := s.Get(ctx, id); err == nil && !time.Now().Before(res.Expires) {
					t.Fatalf("op %d: Get(%s) returned an expired record", i, id)
				}
			}
			if len(s.items) > max {
				t.Fatalf("op %d: %d records, cap %d", i, len(s.items), max)
			}
			checkIndex(t, s)
			if rng.IntN(20) == 0 {
				time.Sleep(time.Duration(rng.IntN(5000)) * time.Millisecond)
			}
		}
	})
}

func TestExpiryKey(t *testing.T) {
	now := time.Now()
	far := now.Add(math.MaxInt64) // past 2262: UnixNano would overflow
	for _, tc := range []struct{ a, b time.Time }{
		{now, now.Add(time.Nanosecond)},
		{now.Add(-time.Hour), now},
		{now, far},
		{time.Unix(0, math.MinInt64).Add(-time.Hour), now},
	} {
		if ka, kb := expiryKey(tc.a), expiryKey(tc.b); ka >= kb {
			t.Errorf("expiryKey(%v) = %d, not below expiryKey(%v) = %d", tc.a, ka, tc.b, kb)
		}
	}
	// A record with a TTL of centuries is kept, and ordered last.
	s := NewMemoryStore(MemoryStoreConfig{MaxEntries: 3})
	ctx := t.Context()
	_ = s.Pending(ctx, "forever", math.MaxInt64)
	_ = s.Pending(ctx, "minute", time.Minute)
	if _, err := s.Get(ctx, "forever"); err != nil {
		t.Fatal(err)
	}
	if s.expiry[0].r.id != "minute" {
		t.Errorf("heap top is %s, want minute", s.expiry[0].r.id)
	}
	checkIndex(t, s)
}
