package redisstate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/correlation/redisstate"
)

// TestUnavailable: with Redis unreachable every operation fails fast with
// an error wrapping ErrUnavailable, so the gateway can answer 503.
func TestUnavailable(t *testing.T) {
	rdb, cfg := deadClient(t)
	s := redisstate.NewStore(rdb, cfg)
	idem := redisstate.NewIdempotency(rdb, cfg)
	r := redisstate.NewRouter(rdb, cfg)
	id := correlation.NewID()
	ops := []struct {
		name string
		op   func(context.Context) error
	}{
		{"Pending", func(ctx context.Context) error { return s.Pending(ctx, id, "", time.Minute) }},
		{"Complete", func(ctx context.Context) error { return s.Complete(ctx, envelope.Reply{CorrelationID: id}) }},
		{"Get", func(ctx context.Context) error { _, err := s.Get(ctx, id); return err }},
		{"Delete", func(ctx context.Context) error { return s.Delete(ctx, id) }},
		{"Cancel", func(ctx context.Context) error { return s.Cancel(ctx, id, "") }},
		{"Reserve", func(ctx context.Context) error {
			_, _, err := idem.Reserve(ctx, "r", "k", correlation.IdempotencyRecord{ID: id})
			return err
		}},
		{"Release", func(ctx context.Context) error { return idem.Release(ctx, "r", "k") }},
		{"Claim", func(ctx context.Context) error { return r.Claim(ctx, id, "a", time.Minute) }},
		{"Owner", func(ctx context.Context) error { _, err := r.Owner(ctx, id); return err }},
		{"Forward", func(ctx context.Context) error {
			_, err := r.Forward(ctx, "a", envelope.Reply{CorrelationID: id})
			return err
		}},
		{"Listen", func(ctx context.Context) error {
			l, err := r.Listen(ctx, "a", func(envelope.Reply) {})
			if err == nil {
				_ = l.Close()
			}
			return err
		}},
	}
	for _, o := range ops {
		t.Run(o.name, func(t *testing.T) {
			// Connection refused on loopback is immediate; the bound
			// covers go-redis' retries with back-off on a slow machine.
			const limit = 5 * time.Second
			start := time.Now()
			err := o.op(t.Context())
			if !errors.Is(err, redisstate.ErrUnavailable) {
				t.Fatalf("error %v, want ErrUnavailable", err)
			}
			if d := time.Since(start); d > limit {
				t.Fatalf("took %v to fail, want under %v", d, limit)
			}
		})
	}
}
