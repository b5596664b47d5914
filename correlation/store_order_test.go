package correlation

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
)

// checkIndex verifies that the map and the expiry heap hold the same
// records, that the heap is ordered, and that the counters match.
func checkIndex(t *testing.T, s *MemoryStore) {
	t.Helper()
	if len(s.expiry) != len(s.items) || s.Len() != len(s.items) {
		t.Fatalf("map %d, heap %d records, Len %d", len(s.items), len(s.expiry), s.Len())
	}
	var size int64
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
		if rep := replyOf(it.r); rep != nil && it.r.size != recordSize(it.r.id, rep) {
			t.Fatalf("%s: size %d, want %d", it.r.id, it.r.size, recordSize(it.r.id, rep))
		} else if rep == nil && it.r.size < recordSize(it.r.id, nil) {
			t.Fatalf("%s: pending size %d, below its own %d", it.r.id, it.r.size, recordSize(it.r.id, nil))
		}
		size += it.r.size
	}
	if s.Bytes() != size {
		t.Fatalf("Bytes() = %d, the records hold %d", s.Bytes(), size)
	}
}

func replyOf(r *record) *envelope.Reply {
	if r.State != StateDone {
		return nil
	}
	return &r.Reply
}

// TestMemoryStoreIndex runs random operations, with random TTLs, reply
// sizes and clock steps, and checks the store's internal order and counters
// after each one. Pending never stores a record beyond the bounds; Promise
// may, and the store then refuses new records until it is back below.
func TestMemoryStoreIndex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		const max, maxBytes = 50, 40 << 10
		s := NewMemoryStore(MemoryStoreConfig{MaxEntries: max, MaxBytes: maxBytes, ResultTTL: 30 * time.Second})
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range 20_000 {
			id := fmt.Sprint(rng.IntN(120))
			ttl := time.Duration(rng.IntN(60)+1) * time.Second
			switch op := rng.IntN(20); {
			case op < 8:
				_, existed := s.items[id]
				n, size := len(s.items), s.Bytes()
				err := s.Pending(ctx, id, "", ttl)
				if err == nil && !existed && len(s.items) > n && (len(s.items) > max || s.Bytes() > maxBytes) {
					t.Fatalf("op %d: Pending stored a record beyond the bounds: %d records, %d bytes (before: %d, %d)",
						i, len(s.items), s.Bytes(), n, size)
				}
				if err != nil && !errors.Is(err, ErrFull) {
					t.Fatalf("op %d: Pending: %v", i, err)
				}
			case op < 9:
				if err := s.Promise(ctx, id, "", ttl); err != nil {
					t.Fatalf("op %d: Promise: %v", i, err)
				}
			case op < 14:
				_ = s.Complete(ctx, envelope.Reply{CorrelationID: id, Body: make([]byte, rng.IntN(2048))})
			case op < 15:
				_ = s.Cancel(ctx, id, "")
			case op < 16:
				_ = s.Delete(ctx, id)
			case op < 17:
				s.sweepBatch(time.Now())
			default:
				if res, err := s.Get(ctx, id); err == nil && !time.Now().Before(res.Expires) {
					t.Fatalf("op %d: Get(%s) returned an expired record", i, id)
				}
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
	_ = s.Pending(ctx, "forever", "", math.MaxInt64)
	_ = s.Pending(ctx, "minute", "", time.Minute)
	if _, err := s.Get(ctx, "forever"); err != nil {
		t.Fatal(err)
	}
	if s.expiry[0].r.id != "minute" {
		t.Errorf("heap top is %s, want minute", s.expiry[0].r.id)
	}
	checkIndex(t, s)
}

// Once sweeps have emptied a large store down to a few records, the map and
// the heap have been remade smaller (Go maps never shrink by themselves):
// at most shrinkAbove slots are left of the 3010.
func TestSweepRemakesIndex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s := NewMemoryStore(MemoryStoreConfig{})
		for i := range 3000 {
			_ = s.Pending(ctx, fmt.Sprint("short-", i), "", time.Second)
		}
		for i := range 10 {
			_ = s.Pending(ctx, fmt.Sprint("long-", i), "", time.Hour)
		}
		time.Sleep(time.Second)
		sweeps := 0
		for s.sweepBatch(time.Now()) == sweepBatch {
			sweeps++
		}
		if sweeps < 3000/sweepBatch {
			t.Errorf("%d full sweeps for 3000 dead records, %d each", sweeps, sweepBatch)
		}
		checkIndex(t, s)
		if s.Len() != 10 || s.peak > shrinkAbove || cap(s.expiry) > shrinkAbove {
			t.Fatalf("Len() %d, peak %d, heap capacity %d; want 10 records in an index of at most %d", s.Len(), s.peak, cap(s.expiry), shrinkAbove)
		}
		if _, err := s.Get(ctx, "long-9"); err != nil {
			t.Fatal(err)
		}
	})
}
