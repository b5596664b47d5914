package correlation_test

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
)

// The registry's one hard promise, put under load: a reply that Deliver
// accepts is never lost, whatever it races with. Run with -race.

// TestRegistryConcurrentLifecycle runs 10 000 waiters at once: a third get
// their reply, a third time out, and a third have their reply delivered while
// they give up. Every reply Deliver accepted must reach its waiter, through C
// or through Cancel, and the registry must end empty.
func TestRegistryConcurrentLifecycle(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	const n = 10_000
	const (
		modeDeliver = iota // the reply arrives; the waiter receives it from C
		modeTimeout        // no reply; the waiter gives up, a late Deliver finds nobody
		modeRace           // Deliver and Cancel run at the same moment
	)
	r := correlation.NewRegistry()
	// Safety net only: a lost reply would otherwise block a waiter forever.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	var (
		registered sync.WaitGroup // all waiters are in the registry
		done       sync.WaitGroup // every goroutine of the test returned
		start      = make(chan struct{})

		delivered     atomic.Int64 // Deliver returned true
		undelivered   atomic.Int64 // Deliver returned false (caller would store it)
		viaC          atomic.Int64 // waiter received from C
		viaCancel     atomic.Int64 // Cancel returned the reply
		raceDelivered atomic.Int64 // modeRace only: Deliver won
	)
	registered.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			id := correlation.NewID()
			w, err := r.Register(id)
			if err != nil {
				registered.Done()
				t.Errorf("Register: %v", err)
				return
			}
			// The reply consumer's goroutine; like the waiter it starts
			// when all are registered, so the two really run together.
			var deliveredOK atomic.Bool
			deliverDone := make(chan struct{})
			done.Add(1)
			go func() {
				defer done.Done()
				defer close(deliverDone)
				<-start
				if i%3 == modeTimeout {
					return // the reply comes after the timeout, below
				}
				deliveredOK.Store(r.Deliver(reply(id)))
			}()
			registered.Done()
			<-start

			switch i % 3 {
			case modeDeliver:
				select {
				case rep, ok := <-w.C():
					if !ok {
						t.Errorf("waiter %s: channel closed, registry was not", id)
					}
					checkReply(t, id, rep)
					viaC.Add(1)
				case <-ctx.Done():
					t.Errorf("waiter %s: reply never arrived", id)
				}
				if rep, ok := w.Cancel(); ok {
					t.Errorf("Cancel after receiving returned a second reply %+v", rep)
				}
				<-deliverDone
				if !deliveredOK.Load() {
					t.Errorf("Deliver(%s) = false for a waiting request", id)
				}
				delivered.Add(1)

			case modeTimeout:
				if rep, ok := w.Cancel(); ok {
					t.Errorf("Cancel returned %+v though nothing was delivered", rep)
				}
				if r.Deliver(reply(id)) {
					t.Errorf("Deliver(%s) after Cancel = true: the reply is lost", id)
					delivered.Add(1)
				} else {
					undelivered.Add(1)
				}

			case modeRace:
				// The waiter's timer fires: it may still find the reply in C,
				// else Cancel must hand over one that slipped in.
				received := false
				select {
				case rep := <-w.C():
					checkReply(t, id, rep)
					viaC.Add(1)
					received = true
				default:
				}
				if rep, cok := w.Cancel(); cok {
					if received {
						t.Errorf("waiter %s received the reply twice", id)
					}
					checkReply(t, id, rep)
					viaCancel.Add(1)
					received = true
				}
				<-deliverDone
				ok := deliveredOK.Load()
				if ok {
					delivered.Add(1)
					raceDelivered.Add(1)
				} else {
					undelivered.Add(1)
				}
				if ok != received {
					t.Errorf("waiter %s: Deliver returned %v, waiter received %v", id, ok, received)
				}
			}
		}()
	}
	registered.Wait()
	if got := r.Len(); got != n {
		t.Errorf("Len() with all waiters registered = %d, want %d", got, n)
	}
	close(start)
	done.Wait()

	if d, rcv := delivered.Load(), viaC.Load()+viaCancel.Load(); d != rcv {
		t.Errorf("Deliver accepted %d replies, waiters received %d: %d lost", d, rcv, d-rcv)
	}
	if d, u := delivered.Load(), undelivered.Load(); d+u != n {
		t.Errorf("delivered %d + undelivered %d != %d deliveries made", d, u, n)
	}
	if got := r.Len(); got != 0 {
		t.Errorf("Len() after every waiter cancelled = %d, want 0", got)
	}
	t.Logf("delivered %d (via C %d, via Cancel %d), undelivered %d; race mode: Deliver won %d of %d",
		delivered.Load(), viaC.Load(), viaCancel.Load(), undelivered.Load(), raceDelivered.Load(), n/3)
}

// TestRegistryReplyAtTimeout repeats the race the registry exists to win: a
// reply lands at the very moment its waiter times out. Whatever the
// interleaving, Deliver returns true exactly when the waiter got the reply;
// when it returns false the waiter got nothing and the caller stores it.
func TestRegistryReplyAtTimeout(t *testing.T) {
	iterations := 20_000
	budget := 8 * time.Second
	if testing.Short() {
		iterations, budget = 2_000, 2*time.Second
	}
	r := correlation.NewRegistry()
	deadline := time.Now().Add(budget)

	var delivered, stored, viaC, viaCancel int
	i := 0
	for ; i < iterations && (i < 1_000 || time.Now().Before(deadline)); i++ {
		id := correlation.NewID()
		w := register(t, r, id)

		start := make(chan struct{})
		var wg sync.WaitGroup
		var ok bool
		var got envelope.Reply
		var fromC, fromCancel bool
		deliver := func() {
			defer wg.Done()
			<-start
			ok = r.Deliver(reply(id))
		}
		timeout := func() {
			defer wg.Done()
			<-start
			// Half of the waiters look at C once more when their timer
			// fires, as a select on C and a timer does; the others go
			// straight to Cancel.
			if i%2 == 0 {
				select {
				case got, fromC = <-w.C():
				default:
				}
			}
			if rep, cok := w.Cancel(); cok {
				got, fromCancel = rep, true
			}
		}
		wg.Add(2)
		// Vary which goroutine is started first so neither is favoured.
		if i%4 < 2 {
			go deliver()
			go timeout()
		} else {
			go timeout()
			go deliver()
		}
		close(start)
		wg.Wait()

		switch {
		case fromC && fromCancel:
			t.Fatalf("iteration %d: the waiter received the reply twice", i)
		case ok && !fromC && !fromCancel:
			t.Fatalf("iteration %d: Deliver returned true but the waiter got nothing: reply lost", i)
		case !ok && (fromC || fromCancel):
			t.Fatalf("iteration %d: Deliver returned false but the waiter got %+v: it would be stored too", i, got)
		case ok:
			checkReply(t, id, got)
			delivered++
			if fromC {
				viaC++
			} else {
				viaCancel++
			}
		default:
			stored++
		}
		select {
		case rep, open := <-w.C():
			t.Fatalf("iteration %d: channel still holds %+v (open %v) after Cancel", i, rep, open)
		default:
		}
	}
	if n := r.Len(); n != 0 {
		t.Errorf("Len() = %d after %d iterations, want 0", n, i)
	}
	t.Logf("%d iterations: Deliver won %d (received via C %d, via Cancel %d), Cancel won %d",
		i, delivered, viaC, viaCancel, stored)
	// Both outcomes prove the race was really run; with one CPU the two
	// goroutines may never overlap, so only report then.
	if runtime.GOMAXPROCS(0) > 1 && i >= 1_000 && (delivered == 0 || stored == 0) {
		t.Errorf("only one outcome in %d iterations (Deliver won %d, Cancel won %d): the race was not exercised",
			i, delivered, stored)
	}
}
