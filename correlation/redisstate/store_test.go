package redisstate_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/correlation/correlationtest"
	"github.com/syncgate/syncgate/correlation/redisstate"
	"github.com/syncgate/syncgate/internal/testenv"
)

func reply(id string) envelope.Reply {
	return envelope.Reply{CorrelationID: id, Status: 201, Body: []byte(id)}
}

func mustGet(t *testing.T, s *redisstate.Store, id string) correlation.Result {
	t.Helper()
	res, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return res
}

func wantNotFound(t *testing.T, s *redisstate.Store, id string) {
	t.Helper()
	if res, err := s.Get(t.Context(), id); !errors.Is(err, correlation.ErrNotFound) {
		t.Fatalf("Get(%s) = %+v, %v; want ErrNotFound", id, res, err)
	}
}

func newStore(t *testing.T, resultTTL time.Duration) (*redisstate.Store, func(id string) string, goredis.UniversalClient) {
	t.Helper()
	rdb, cfg := newClient(t)
	cfg.ResultTTL = resultTTL
	return redisstate.NewStore(rdb, cfg), func(id string) string { return redisstate.ResultKey(cfg.Prefix, id) }, rdb
}

func TestStoreLifecycle(t *testing.T) {
	ctx := t.Context()
	s, key, rdb := newStore(t, 5*time.Minute)
	id := correlation.NewID()
	wantNotFound(t, s, id)

	if err := s.Pending(ctx, id, "", time.Minute); err != nil {
		t.Fatalf("Pending: %v", err)
	}
	res := mustGet(t, s, id)
	if res.State != correlation.StatePending {
		t.Fatalf("after Pending: state %v, want pending", res.State)
	}
	if left := time.Until(res.Expires); left > time.Minute || left < 55*time.Second {
		t.Fatalf("after Pending: expires in %v, want about 1m", left)
	}
	wantTTL(t, rdb, key(id), time.Minute)

	want := correlationtest.FullReply(id)
	if err := s.Complete(ctx, want); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	res = mustGet(t, s, id)
	if res.State != correlation.StateDone {
		t.Fatalf("after Complete: state %v, want done", res.State)
	}
	if !reflect.DeepEqual(res.Reply, want) {
		t.Fatalf("stored reply\n%+v\nwant\n%+v", res.Reply, want)
	}
	// Completing restarts the clock: the reply lives ResultTTL from now.
	wantTTL(t, rdb, key(id), 5*time.Minute)
	if left := time.Until(res.Expires); left > 5*time.Minute || left < 5*time.Minute-5*time.Second {
		t.Fatalf("after Complete: expires in %v, want about 5m", left)
	}

	if err := s.Delete(ctx, id); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantNotFound(t, s, id)
	if err := s.Delete(ctx, id); err != nil {
		t.Fatalf("Delete of a missing id: %v", err)
	}
}

func TestStoreSemantics(t *testing.T) {
	s, _, _ := newStore(t, time.Hour)
	pending := func(t *testing.T, s *redisstate.Store, id string) {
		t.Helper()
		if err := s.Pending(t.Context(), id, "", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	complete := func(t *testing.T, s *redisstate.Store, id string) {
		t.Helper()
		if err := s.Complete(t.Context(), reply(id)); err != nil {
			t.Fatal(err)
		}
	}
	cancel := func(t *testing.T, s *redisstate.Store, id string) {
		t.Helper()
		if err := s.Cancel(t.Context(), id, ""); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		setup []func(*testing.T, *redisstate.Store, string)
		op    func(context.Context, *redisstate.Store, string) error
		err   error
		state correlation.State // after op; 0: no record
	}{
		{"complete without pending", nil, completeOther(500), correlation.ErrNotFound, 0},
		{"complete twice: the first wins", []func(*testing.T, *redisstate.Store, string){pending, complete}, completeOther(500), correlation.ErrCompleted, correlation.StateDone},
		{"pending after complete keeps the reply", []func(*testing.T, *redisstate.Store, string){pending, complete}, pendingOp, nil, correlation.StateDone},
		{"pending twice", []func(*testing.T, *redisstate.Store, string){pending}, pendingOp, nil, correlation.StatePending},
		{"pending after cancel keeps the cancel", []func(*testing.T, *redisstate.Store, string){pending, cancel}, pendingOp, nil, correlation.StateCancelled},
		{"cancel pending", []func(*testing.T, *redisstate.Store, string){pending}, cancelOp, nil, correlation.StateCancelled},
		{"cancel twice", []func(*testing.T, *redisstate.Store, string){pending, cancel}, cancelOp, nil, correlation.StateCancelled},
		{"cancel unknown", nil, cancelOp, correlation.ErrNotFound, 0},
		{"cancel done", []func(*testing.T, *redisstate.Store, string){pending, complete}, cancelOp, correlation.ErrCompleted, correlation.StateDone},
		{"complete cancelled", []func(*testing.T, *redisstate.Store, string){pending, cancel}, completeOther(500), correlation.ErrCancelled, correlation.StateCancelled},
		{"pending with no ttl stores nothing", nil, func(ctx context.Context, s *redisstate.Store, id string) error { return s.Pending(ctx, id, "", 0) }, nil, 0},
		{"delete", []func(*testing.T, *redisstate.Store, string){pending, complete}, func(ctx context.Context, s *redisstate.Store, id string) error { return s.Delete(ctx, id) }, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := correlation.NewID()
			for _, f := range tt.setup {
				f(t, s, id)
			}
			if err := tt.op(t.Context(), s, id); !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if tt.state == 0 {
				wantNotFound(t, s, id)
				return
			}
			res := mustGet(t, s, id)
			if res.State != tt.state {
				t.Fatalf("state %v, want %v", res.State, tt.state)
			}
			if res.State == correlation.StateDone {
				if got := res.Reply; got.CorrelationID != id || got.Status != 201 || string(got.Body) != id {
					t.Fatalf("stored reply %+v, want the first one", got)
				}
			}
		})
	}
}

func completeOther(status int) func(context.Context, *redisstate.Store, string) error {
	return func(ctx context.Context, s *redisstate.Store, id string) error {
		return s.Complete(ctx, envelope.Reply{CorrelationID: id, Status: status, Body: []byte("duplicate")})
	}
}

func pendingOp(ctx context.Context, s *redisstate.Store, id string) error {
	return s.Pending(ctx, id, "", time.Minute)
}

func cancelOp(ctx context.Context, s *redisstate.Store, id string) error {
	return s.Cancel(ctx, id, "")
}

func TestStoreTTL(t *testing.T) {
	ctx := t.Context()
	s, key, rdb := newStore(t, 10*time.Minute)

	t.Run("cancel keeps the record for the result TTL", func(t *testing.T) {
		id := correlation.NewID()
		if err := s.Pending(ctx, id, "", time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := s.Cancel(ctx, id, ""); err != nil {
			t.Fatal(err)
		}
		wantTTL(t, rdb, key(id), 10*time.Minute)
	})

	t.Run("pending expires", func(t *testing.T) {
		id := correlation.NewID()
		if err := s.Pending(ctx, id, "", 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, "pending record expired", func() bool {
			_, err := s.Get(ctx, id)
			return errors.Is(err, correlation.ErrNotFound)
		})
		if err := s.Complete(ctx, reply(id)); !errors.Is(err, correlation.ErrNotFound) {
			t.Fatalf("Complete after the pending TTL = %v, want ErrNotFound", err)
		}
		wantNotFound(t, s, id) // an orphan is not stored
		// Accepting the id again starts a new record.
		if err := s.Pending(ctx, id, "", time.Minute); err != nil {
			t.Fatal(err)
		}
		if res := mustGet(t, s, id); res.State != correlation.StatePending {
			t.Fatalf("state %v, want pending", res.State)
		}
	})

	t.Run("default result TTL is 24h", func(t *testing.T) {
		rdb, cfg := newClient(t)
		s := redisstate.NewStore(rdb, cfg)
		id := correlation.NewID()
		if err := s.Pending(ctx, id, "", time.Second); err != nil {
			t.Fatal(err)
		}
		if err := s.Complete(ctx, reply(id)); err != nil {
			t.Fatal(err)
		}
		wantTTL(t, rdb, redisstate.ResultKey(cfg.Prefix, id), 24*time.Hour)
	})
}

// TestStoreConcurrentComplete: nodes racing to complete one id store exactly
// one reply, and it is the winner's.
func TestStoreConcurrentComplete(t *testing.T) {
	ctx := t.Context()
	s, _, _ := newStore(t, time.Hour)
	const racers = 50
	for round := range 3 {
		id := fmt.Sprint(correlation.NewID(), "-", round)
		if err := s.Pending(ctx, id, "", time.Minute); err != nil {
			t.Fatal(err)
		}
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			wins   []int
			others []error
		)
		start := make(chan struct{})
		for i := range racers {
			wg.Go(func() {
				<-start
				err := s.Complete(ctx, envelope.Reply{CorrelationID: id, Status: 200, Body: fmt.Appendf(nil, "racer %d", i)})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins = append(wins, i)
				case !errors.Is(err, correlation.ErrCompleted):
					others = append(others, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(wins) != 1 || len(others) != 0 {
			t.Fatalf("round %d: winners %v, unexpected errors %v; want one winner, the rest ErrCompleted", round, wins, others)
		}
		if got, want := string(mustGet(t, s, id).Reply.Body), fmt.Sprintf("racer %d", wins[0]); got != want {
			t.Fatalf("round %d: stored %q, want the winner's %q", round, got, want)
		}
	}
}
