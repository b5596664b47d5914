package redisstate_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/correlation/redisstate"
	"github.com/syncgate/syncgate/internal/testenv"
)

func TestIdempotency(t *testing.T) {
	rdb, cfg := newClient(t)
	cfg.IdempotencyTTL = time.Minute
	s := redisstate.NewIdempotency(rdb, cfg)
	ctx := t.Context()
	a := correlation.IdempotencyRecord{ID: "a", Fingerprint: "fa"}
	b := correlation.IdempotencyRecord{ID: "b", Fingerprint: "fb"}

	if got, ok, err := s.Reserve(ctx, "r", "k", a); err != nil || !ok || got != a {
		t.Fatalf("first Reserve = %v, %v, %v", got, ok, err)
	}
	wantTTL(t, rdb, redisstate.IdemKey(cfg.Prefix, "r", "k"), time.Minute)
	if got, ok, err := s.Reserve(ctx, "r", "k", b); err != nil || ok || got != a {
		t.Fatalf("second Reserve = %v, %v, %v; want the first record", got, ok, err)
	}
	wantTTL(t, rdb, redisstate.IdemKey(cfg.Prefix, "r", "k"), time.Minute) // a losing Reserve keeps the TTL
	if _, ok, _ := s.Reserve(ctx, "other", "k", b); !ok {
		t.Fatal("keys must be scoped")
	}
	if err := s.Release(ctx, "r", "k"); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.Reserve(ctx, "r", "k", b); err != nil || !ok || got != b {
		t.Fatalf("Reserve after Release = %v, %v, %v", got, ok, err)
	}
	if err := s.Release(ctx, "r", "missing"); err != nil {
		t.Fatalf("Release of an unbound key: %v", err)
	}

	t.Run("expired key is free", func(t *testing.T) {
		short := cfg
		short.IdempotencyTTL = 100 * time.Millisecond
		s := redisstate.NewIdempotency(rdb, short)
		if _, ok, err := s.Reserve(ctx, "r", "short", a); err != nil || !ok {
			t.Fatalf("Reserve = %v, %v", ok, err)
		}
		testenv.Eventually(t, 10*time.Second, "key expired", func() bool {
			n, err := rdb.Exists(ctx, redisstate.IdemKey(cfg.Prefix, "r", "short")).Result()
			return err == nil && n == 0
		})
		if got, ok, err := s.Reserve(ctx, "r", "short", b); err != nil || !ok || got != b {
			t.Fatalf("Reserve after expiry = %v, %v, %v", got, ok, err)
		}
	})

	t.Run("garbage value is an error", func(t *testing.T) {
		if err := rdb.Set(ctx, redisstate.IdemKey(cfg.Prefix, "r", "junk"), "not json", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := s.Reserve(ctx, "r", "junk", a); err == nil || ok {
			t.Fatalf("Reserve over garbage = %v, %v, %v; want an error", got, ok, err)
		}
	})
}

// TestIdempotencyConcurrentReserve: retries racing on several nodes bind the
// key once, and every loser sees the winner's record.
func TestIdempotencyConcurrentReserve(t *testing.T) {
	rdb, cfg := newClient(t)
	s := redisstate.NewIdempotency(rdb, cfg)
	ctx := t.Context()
	const racers = 50
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []correlation.IdempotencyRecord
		seen    = map[correlation.IdempotencyRecord]int{}
	)
	start := make(chan struct{})
	for i := range racers {
		wg.Go(func() {
			<-start
			rec := correlation.IdempotencyRecord{ID: fmt.Sprint("id-", i), Fingerprint: "fp"}
			got, ok, err := s.Reserve(ctx, "pay", "key-1", rec)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("Reserve: %v", err)
				return
			}
			if ok {
				winners = append(winners, got)
			}
			seen[got]++
		})
	}
	close(start)
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d winners, want 1: %v", len(winners), winners)
	}
	if len(seen) != 1 || seen[winners[0]] != racers {
		t.Fatalf("records returned %v, want %d × the winner's %v", seen, racers, winners[0])
	}
}
