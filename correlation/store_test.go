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

		if err := s.Pending(ctx, id, "", time.Minute); err != nil {
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
		if err := s.Pending(ctx, id, "", time.Minute); err != nil {
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
		if err := s.Pending(ctx, id, "", time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := s.Complete(ctx, reply(id)); err != nil {
			t.Fatal(err)
		}
		// The reply may land before the gateway records the 202.
		if err := s.Pending(ctx, id, "", time.Minute); err != nil {
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
			if err := s.Pending(ctx, id, "", time.Minute); err != nil {
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
			if err := s.Pending(ctx, id, "", time.Minute); err != nil {
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
			if err := s.Pending(ctx, id, "", time.Second); err != nil {
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
			if err := s.Pending(ctx, id, "", time.Hour); err != nil {
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
			if err := s.Pending(ctx, id, "", time.Second); err != nil {
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
			if err := s.Pending(ctx, "long", "", time.Hour); err != nil {
				t.Fatal(err)
			}
			for i := range 100 {
				id := fmt.Sprint("short-", i)
				if err := s.Pending(ctx, id, "", time.Second); err != nil {
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
				if err := s.Pending(ctx, fmt.Sprint("new-", i), "", time.Hour); err != nil {
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
	t.Run("live records are never evicted", func(t *testing.T) {
		ctx := t.Context()
		const max = 10
		s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{MaxEntries: max})
		promised := correlation.NewID()
		if err := s.Pending(ctx, promised, "", time.Hour); err != nil {
			t.Fatal(err)
		}
		stored, refused := 0, 0
		for i := range 10 * max {
			id := correlation.NewID()
			switch err := s.Pending(ctx, id, "", time.Hour); {
			case err == nil:
				stored++
				if i%2 == 0 {
					// A completed result is owed to its poller too.
					if err := s.Complete(ctx, reply(id)); err != nil {
						t.Fatal(err)
					}
				}
			case errors.Is(err, correlation.ErrFull):
				refused++
			default:
				t.Fatalf("Pending: %v", err)
			}
		}
		if stored != max-1 || refused != 10*max-stored || s.Len() != max {
			t.Fatalf("%d stored, %d refused, Len() = %d; want %d stored and Len() = %d", stored, refused, s.Len(), max-1, max)
		}
		if err := s.Room(); !errors.Is(err, correlation.ErrFull) {
			t.Fatalf("Room() on a full store = %v, want ErrFull", err)
		}
		if res := mustGet(t, s, promised); res.State != correlation.StatePending {
			t.Fatalf("the first record after the flood: %+v, want pending", res)
		}
		if err := s.Complete(ctx, reply(promised)); err != nil {
			t.Fatalf("Complete of the first record: %v", err)
		}
		checkReply(t, promised, mustGet(t, s, promised).Reply)
	})

	t.Run("Promise is never refused", func(t *testing.T) {
		ctx := t.Context()
		s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{MaxEntries: 1})
		if err := s.Pending(ctx, correlation.NewID(), "", time.Hour); err != nil {
			t.Fatal(err)
		}
		// A request published while there was room, answered 202 now.
		late := correlation.NewID()
		if err := s.Promise(ctx, late, "", time.Hour); err != nil {
			t.Fatalf("Promise on a full store: %v", err)
		}
		mustGet(t, s, late)
		if err := s.Pending(ctx, correlation.NewID(), "", time.Hour); !errors.Is(err, correlation.ErrFull) {
			t.Fatalf("Pending over the cap = %v, want ErrFull", err)
		}
	})

	t.Run("replacing a record does not need room", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := t.Context()
			s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{MaxEntries: 2})
			a, b := correlation.NewID(), correlation.NewID()
			_ = s.Pending(ctx, a, "", time.Second)
			_ = s.Pending(ctx, b, "", time.Hour)
			time.Sleep(time.Second)
			if err := s.Pending(ctx, a, "", time.Hour); err != nil { // re-accept the expired a
				t.Fatal(err)
			}
			mustGet(t, s, a)
			mustGet(t, s, b)
			if err := s.Pending(ctx, b, "", time.Hour); err != nil { // a no-op on a live record
				t.Fatal(err)
			}
		})
	})

	t.Run("expired records make room", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := t.Context()
			s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{MaxEntries: 3, ResultTTL: time.Hour})
			old, short, done := correlation.NewID(), correlation.NewID(), correlation.NewID()
			_ = s.Pending(ctx, old, "", time.Hour)     // oldest, but alive
			_ = s.Pending(ctx, short, "", time.Second) // newer, expires first
			_ = s.Pending(ctx, done, "", time.Second)  // completed: lives on
			if err := s.Complete(ctx, reply(done)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)

			if err := s.Room(); err != nil {
				t.Fatalf("Room() with an expired record = %v", err)
			}
			if err := s.Pending(ctx, correlation.NewID(), "", time.Hour); err != nil {
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

// The byte budget refuses new records, never a reply: Complete replaces a
// pending record whatever its size, and the store refuses new records
// until the results that took it over budget expire.
func TestMemoryStoreMaxBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		const budget = 64 << 10
		s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{MaxBytes: budget, ResultTTL: time.Minute})
		a, b := correlation.NewID(), correlation.NewID()
		for _, id := range []string{a, b} {
			if err := s.Pending(ctx, id, "", time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		pendingBytes := s.Bytes()
		if pendingBytes <= 0 || pendingBytes > 2<<10 {
			t.Fatalf("two pending records count %d bytes", pendingBytes)
		}
		big := func(id string) envelope.Reply {
			return envelope.Reply{CorrelationID: id, Body: make([]byte, 40<<10), Header: map[string]string{"x": "y"}}
		}
		if err := s.Complete(ctx, big(a)); err != nil {
			t.Fatal(err)
		}
		if got := s.Bytes(); got < pendingBytes+40<<10 {
			t.Fatalf("Bytes() = %d after a 40 KiB reply", got)
		}
		if err := s.Complete(ctx, big(b)); err != nil {
			t.Fatalf("Complete over the budget: %v (a reply is never refused)", err)
		}
		if s.Bytes() <= budget {
			t.Fatalf("Bytes() = %d, want over the %d budget", s.Bytes(), budget)
		}
		if err := s.Pending(ctx, correlation.NewID(), "", time.Hour); !errors.Is(err, correlation.ErrFull) {
			t.Fatalf("Pending over the byte budget = %v, want ErrFull", err)
		}
		if err := s.Room(); !errors.Is(err, correlation.ErrFull) {
			t.Fatalf("Room() over the byte budget = %v, want ErrFull", err)
		}
		mustGet(t, s, a)
		mustGet(t, s, b)

		time.Sleep(time.Minute) // the results expire: their bytes make room
		if err := s.Pending(ctx, correlation.NewID(), "", time.Hour); err != nil {
			t.Fatalf("Pending once the results expired: %v", err)
		}
		// The new pending record reserves room for a reply like the others.
		if s.Len() != 1 || s.Bytes() < 40<<10 || s.Bytes() > 42<<10 {
			t.Fatalf("Len() = %d, Bytes() = %d after the results expired; want one record reserving ~40 KiB", s.Len(), s.Bytes())
		}
		if err := s.Delete(ctx, "nothing"); err != nil {
			t.Fatal(err)
		}
	})
}

// A burst of requests answered 202 before any of their replies is back
// cannot take the store far past MaxBytes: each pending record reserves the
// size of the replies seen so far.
func TestMemoryStoreReservesReplies(t *testing.T) {
	ctx := t.Context()
	const budget, reply = 1 << 20, 64 << 10
	s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{MaxBytes: budget})
	first := correlation.NewID()
	if err := s.Pending(ctx, first, "", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, envelope.Reply{CorrelationID: first, Body: make([]byte, reply)}); err != nil {
		t.Fatal(err)
	}
	var burst []string
	for range 100 {
		id := correlation.NewID()
		if err := s.Pending(ctx, id, "", time.Hour); err == nil {
			burst = append(burst, id)
		} else if !errors.Is(err, correlation.ErrFull) {
			t.Fatal(err)
		}
	}
	if len(burst) > budget/reply {
		t.Fatalf("%d pending records of 64 KiB replies admitted into a 1 MiB budget", len(burst))
	}
	for _, id := range burst {
		if err := s.Complete(ctx, envelope.Reply{CorrelationID: id, Body: make([]byte, reply)}); err != nil {
			t.Fatal(err)
		}
	}
	if s.Bytes() > budget {
		t.Fatalf("Bytes() = %d once the burst's replies are in, budget %d", s.Bytes(), budget)
	}
	t.Logf("%d of 100 admitted; %d bytes stored", len(burst), s.Bytes())
}

// TestMemoryStoreConcurrent hammers one small store from more goroutines
// than it has room for (run it with -race): the cap holds at all times, a
// record that was stored is never lost, and for each id exactly one of
// several concurrent Completes wins and its reply is the one stored.
func TestMemoryStoreConcurrent(t *testing.T) {
	ctx := t.Context()
	const (
		max        = 4
		workers    = 8
		perWorker  = 500
		completers = 4
	)
	s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{MaxEntries: max})
	var wg sync.WaitGroup
	var overCap, stored, refused atomic.Int64
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				id := fmt.Sprintf("w%d-%d", w, i)
				if err := s.Pending(ctx, id, "", time.Hour); errors.Is(err, correlation.ErrFull) {
					refused.Add(1)
					continue
				} else if err != nil {
					t.Errorf("Pending: %v", err)
					return
				}
				stored.Add(1)
				var winner atomic.Int64
				var wins atomic.Int64
				var cw sync.WaitGroup
				for c := range completers {
					cw.Go(func() {
						rep := envelope.Reply{CorrelationID: id, Status: 200 + c}
						switch err := s.Complete(ctx, rep); {
						case err == nil:
							wins.Add(1)
							winner.Store(int64(rep.Status))
						case errors.Is(err, correlation.ErrCompleted):
						default:
							t.Errorf("Complete: %v", err)
						}
					})
				}
				cw.Wait()
				if wins.Load() != 1 {
					t.Errorf("%s completed %d times", id, wins.Load())
				}
				res, err := s.Get(ctx, id)
				if err != nil || res.State != correlation.StateDone || int64(res.Reply.Status) != winner.Load() {
					t.Errorf("%s: %+v, %v after Complete by %d", id, res, err, winner.Load())
				}
				if s.Len() > max {
					overCap.Add(1)
				}
				_ = s.Delete(ctx, id)
			}
		})
	}
	wg.Wait()
	if n := overCap.Load(); n > 0 {
		t.Errorf("Len() exceeded MaxEntries %d times", n)
	}
	if s.Len() != 0 || s.Bytes() != 0 {
		t.Errorf("Len() = %d, Bytes() = %d after every record was deleted", s.Len(), s.Bytes())
	}
	t.Logf("%d stored, %d refused", stored.Load(), refused.Load())
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
