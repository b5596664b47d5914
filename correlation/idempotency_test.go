package correlation_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncgate/syncgate/correlation"
)

func TestMemoryIdempotency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := correlation.NewMemoryIdempotency(correlation.MemoryIdempotencyConfig{TTL: time.Minute, MaxEntries: 2})
		ctx := t.Context()
		a := correlation.IdempotencyRecord{ID: "a", Fingerprint: "fa"}
		if got, ok, err := s.Reserve(ctx, "r", "k", a); err != nil || !ok || got != a {
			t.Fatalf("first Reserve = %v, %v, %v", got, ok, err)
		}
		b := correlation.IdempotencyRecord{ID: "b", Fingerprint: "fb"}
		if got, ok, _ := s.Reserve(ctx, "r", "k", b); ok || got != a {
			t.Fatalf("second Reserve = %v, %v; want the first record", got, ok)
		}
		if _, ok, _ := s.Reserve(ctx, "other", "k", b); !ok {
			t.Fatal("keys must be scoped")
		}
		if _, _, err := s.Reserve(ctx, "r", "k2", b); err != correlation.ErrIdempotencyFull {
			t.Fatalf("full store: %v", err)
		}
		_ = s.Release(ctx, "r", "k")
		if got, ok, _ := s.Reserve(ctx, "r", "k", b); !ok || got != b {
			t.Fatalf("Reserve after Release = %v, %v", got, ok)
		}
		time.Sleep(time.Minute)
		if n := s.Len(); n != 0 {
			t.Fatalf("%d keys after the TTL", n)
		}
		if _, ok, _ := s.Reserve(ctx, "r", "k", a); !ok {
			t.Fatal("an expired key must be free")
		}
	})
}
