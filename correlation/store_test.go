package correlation_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
)

// The store reads time.Now; inside a synctest bubble that is a fake clock
// that time.Sleep advances instantly, so TTLs are tested to the nanosecond
// without waiting for them.

func mustGet(t *testing.T, s *correlation.MemoryStore, id string) correlation.Result {
	t.Helper()
	res, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return res
}

func wantNotFound(t *testing.T, s *correlation.MemoryStore, id string) {
	t.Helper()
	if res, err := s.Get(t.Context(), id); !errors.Is(err, correlation.ErrNotFound) {
		t.Fatalf("Get(%s) = %+v, %v; want ErrNotFound", id, res, err)
	}
}

func TestMemoryStoreLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{ResultTTL: 5 * time.Minute})
		id := correlation.NewID()
		wantNotFound(t, s, id)

		if err := s.Pending(ctx, id, time.Minute); err != nil {
			t.Fatalf("Pending: %v", err)
		}
		res := mustGet(t, s, id)
		if res.State != correlation.StatePending || !res.Expires.Equal(time.Now().Add(time.Minute)) {
			t.Fatalf("after Pending: %+v, want pending expiring in 1m", res)
		}

		time.Sleep(30 * time.Second)
		if err := s.Complete(ctx, reply(id)); err != nil {
			t.Fatalf("Complete: %v", err)
		}
		res = mustGet(t, s, id)
		if res.State != correlation.StateDone || res.State.String() != "done" {
			t.Fatalf("after Complete: state %v, want done", res.State)
		}
		checkReply(t, id, res.Reply)
		// Completing restarts the clock: the reply lives ResultTTL from now,
		// not what was left of the pending TTL.
		if want := time.Now().Add(5 * time.Minute); !res.Expires.Equal(want) {
			t.Fatalf("Expires = %v, want %v", res.Expires, want)
		}
		time.Sleep(time.Minute)
		mustGet(t, s, id)

		if err := s.Delete(ctx, id); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		wantNotFound(t, s, id)
		if err := s.Delete(ctx, id); err != nil {
			t.Fatalf("Delete of a missing id: %v", err)
		}
		if s.Len() != 0 {
			t.Fatalf("Len() = %d, want 0", s.Len())
		}
	})
}

func TestMemoryStoreComplete(t *testing.T) {
	ctx := t.Context()
	s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})

	t.Run("without Pending", func(t *testing.T) {
		id := correlation.NewID()
		if err := s.Complete(ctx, reply(id)); !errors.Is(err, correlation.ErrNotFound) {
			t.Fatalf("Complete of an unknown id = %v, want ErrNotFound", err)
		}
		wantNotFound(t, s, id) // an orphan is not stored
	})

	t.Run("twice", func(t *testing.T) {
		id := correlation.NewID()
		if err := s.Pending(ctx, id, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := s.Complete(ctx, reply(id)); err != nil {
			t.Fatalf("first Complete: %v", err)
		}
		second := envelope.Reply{CorrelationID: id, Status: 500, Body: []byte("duplicate")}
		if err := s.Complete(ctx, second); !errors.Is(err, correlation.ErrCompleted) {
			t.Fatalf("second Complete = %v, want ErrCompleted", err)
		}
		checkReply(t, id, mustGet(t, s, id).Reply) // the first one wins
	})

	t.Run("Pending after Complete", func(t *testing.T) {
		id := correlation.NewID()
		if err := s.Pending(ctx, id, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := s.Complete(ctx, reply(id)); err != nil {
			t.Fatal(err)
		}
		// The reply may land before the gateway records the 202.
		if err := s.Pending(ctx, id, time.Minute); err != nil {
			t.Fatalf("Pending: %v", err)
		}
		res := mustGet(t, s, id)
		if res.State != correlation.StateDone {
			t.Fatalf("Pending hid the stored reply: state %v", res.State)
		}
		checkReply(t, id, res.Reply)
	})
}

func TestMemoryStoreTTL(t *testing.T) {
	t.Run("pending expires", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := t.Context()
			s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
			id := correlation.NewID()
			if err := s.Pending(ctx, id, time.Minute); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Minute - time.Nanosecond)
			mustGet(t, s, id)
			time.Sleep(time.Nanosecond)
			wantNotFound(t, s, id)
			if err := s.Complete(ctx, reply(id)); !errors.Is(err, correlation.ErrNotFound) {
				t.Fatalf("Complete after the pending TTL = %v, want ErrNotFound", err)
			}
			// Accepting the id again starts a new record.
			if err := s.Pending(ctx, id, time.Minute); err != nil {
				t.Fatal(err)
			}
			if res := mustGet(t, s, id); res.State != correlation.StatePending {
				t.Fatalf("state %v, want pending", res.State)
			}
		})
	})

	t.Run("complete on an expired record", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := t.Context()
			s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
			id := correlation.NewID()
			if err := s.Pending(ctx, id, time.Second); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			// No Get in between: the record is dead but not yet dropped.
			if err := s.Complete(ctx, reply(id)); !errors.Is(err, correlation.ErrNotFound) {
				t.Fatalf("Complete = %v, want ErrNotFound", err)
			}
			wantNotFound(t, s, id)
		})
	})

	t.Run("done expires", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := t.Context()
			s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{ResultTTL: 10 * time.Second})
			id := correlation.NewID()
			if err := s.Pending(ctx, id, time.Hour); err != nil {
				t.Fatal(err)
			}
			if err := s.Complete(ctx, reply(id)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10*time.Second - time.Nanosecond)
			mustGet(t, s, id)
			time.Sleep(time.Nanosecond)
			wantNotFound(t, s, id)
			if s.Len() != 0 {
				t.Fatalf("Len() = %d after Get dropped the expired record", s.Len())
			}
		})
	})

	t.Run("default result TTL", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := t.Context()
			s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
			id := correlation.NewID()
			if err := s.Pending(ctx, id, time.Second); err != nil {
				t.Fatal(err)
			}
			if err := s.Complete(ctx, reply(id)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10*time.Minute - time.Nanosecond)
			mustGet(t, s, id)
			time.Sleep(time.Nanosecond)
			wantNotFound(t, s, id)
		})
	})

	t.Run("expired records are dropped without Get", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := t.Context()
			s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{ResultTTL: time.Minute})
			// A long-lived record first, so the short-lived ones behind it
			// are not at the old end of the insertion order.
			if err := s.Pending(ctx, "long", time.Hour); err != nil {
				t.Fatal(err)
			}
			for i := range 100 {
				id := fmt.Sprint("short-", i)
				if err := s.Pending(ctx, id, time.Second); err != nil {
					t.Fatal(err)
				}
				if i%2 == 0 {
					if err := s.Complete(ctx, reply(id)); err != nil {
						t.Fatal(err)
					}
				}
			}
			time.Sleep(time.Hour - time.Second)
			// Each insert drops some expired records, so inserts alone,
			// with no Get, bring the dead records down.
			for i := range 100 {
				if err := s.Pending(ctx, fmt.Sprint("new-", i), time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			if got, want := s.Len(), 101; got != want {
				t.Fatalf("Len() = %d, want %d: expired records were kept", got, want)
			}
			mustGet(t, s, "long")
		})
	})
}

func TestMemoryStoreMaxEntries(t *testing.T) {
	t.Run("oldest goes first", func(t *testing.T) {
		ctx := t.Context()
		const max = 3
		s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{MaxEntries: max})
		ids := make([]string, 10)
		for i := range ids {
			ids[i] = correlation.NewID()
			if err := s.Pending(ctx, ids[i], time.Hour); err != nil {
				t.Fatal(err)
			}
			if i%2 == 1 {
				// A completed record is still as old as its Pending.
				if err := s.Complete(ctx, reply(ids[i])); err != nil {
					t.Fatal(err)
				}
			}
			if s.Len() > max {
				t.Fatalf("Len() = %d after %d inserts, cap is %d", s.Len(), i+1, max)
			}
			for j, id := range ids[:i+1] {
				_, err := s.Get(ctx, id)
				if kept := j > i-max; kept != (err == nil) {
					t.Fatalf("after %d inserts, record %d: Get error %v, want kept=%v", i+1, j, err, kept)
				}
			}
		}
	})

	t.Run("replacing a record does not evict another", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := t.Context()
			s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{MaxEntries: 2})
			a, b := correlation.NewID(), correlation.NewID()
			_ = s.Pending(ctx, a, time.Second)
			_ = s.Pending(ctx, b, time.Hour)
			time.Sleep(time.Second)
			_ = s.Pending(ctx, a, time.Hour) // re-accept the expired a
			mustGet(t, s, a)
			mustGet(t, s, b)
		})
	})

	t.Run("expired records go before live ones", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := t.Context()
			s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{MaxEntries: 3, ResultTTL: time.Hour})
			old, short, done := correlation.NewID(), correlation.NewID(), correlation.NewID()
			_ = s.Pending(ctx, old, time.Hour)     // oldest, but alive
			_ = s.Pending(ctx, short, time.Second) // newer, expires first
			_ = s.Pending(ctx, done, time.Second)  // completed: lives on
			if err := s.Complete(ctx, reply(done)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)

			if err := s.Pending(ctx, correlation.NewID(), time.Hour); err != nil {
				t.Fatal(err)
			}
			if s.Len() > 3 {
				t.Fatalf("Len() = %d, cap is 3", s.Len())
			}
			mustGet(t, s, old)
			mustGet(t, s, done)
			wantNotFound(t, s, short)
		})
	})
}

// TestMemoryStoreConcurrent hammers one small store from several goroutines
// (run it with -race): the cap holds at all times and, for each id, exactly
// one of several concurrent Completes wins and its reply is the one stored.
func TestMemoryStoreConcurrent(t *testing.T) {
	ctx := t.Context()
	const (
		max        = 64
		workers    = 8
		perWorker  = 500
		completers = 4
	)
	s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{MaxEntries: max})
	var wg sync.WaitGroup
	var overCap atomic.Int64
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				id := fmt.Sprintf("w%d-%d", w, i)
				if err := s.Pending(ctx, id, time.Hour); err != nil {
					t.Errorf("Pending: %v", err)
					return
				}
				var wins atomic.Int64
				var cw sync.WaitGroup
				for c := range completers {
					cw.Go(func() {
						rep := envelope.Reply{CorrelationID: id, Status: 200 + c}
						switch err := s.Complete(ctx, rep); {
						case err == nil:
							wins.Add(1)
						case errors.Is(err, correlation.ErrCompleted), errors.Is(err, correlation.ErrNotFound):
							// A duplicate, or the record was evicted by
							// other workers filling the store.
						default:
							t.Errorf("Complete: %v", err)
						}
					})
				}
				cw.Wait()
				if wins.Load() > 1 {
					t.Errorf("%s completed %d times", id, wins.Load())
				}
				if res, err := s.Get(ctx, id); err == nil && wins.Load() == 1 {
					if res.State != correlation.StateDone || res.Reply.CorrelationID != id {
						t.Errorf("%s: %+v after a successful Complete", id, res)
					}
				}
				if s.Len() > max {
					overCap.Add(1)
				}
				if i%3 == 0 {
					_ = s.Delete(ctx, id)
				}
			}
		})
	}
	wg.Wait()
	if n := overCap.Load(); n > 0 {
		t.Errorf("Len() exceeded MaxEntries %d times", n)
	}
	if s.Len() > max {
		t.Errorf("Len() = %d, cap %d", s.Len(), max)
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[correlation.State]string{
		correlation.StatePending: "pending",
		correlation.StateDone:    "done",
		0:                        "unknown",
	} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", s, got, want)
		}
	}
}
