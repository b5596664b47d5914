package correlation_test

import (
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
)

// reply builds a reply whose body names the id, so a test can tell a reply
// that reached the wrong waiter from the right one.
func reply(id string) envelope.Reply {
	return envelope.Reply{CorrelationID: id, Status: 201, Body: []byte(id)}
}

func register(t *testing.T, r *correlation.Registry, id string) *correlation.Waiter {
	t.Helper()
	w, err := r.Register(id)
	if err != nil {
		t.Fatalf("Register(%q): %v", id, err)
	}
	return w
}

// checkReply fails unless rep is the reply made by reply(id).
func checkReply(t *testing.T, id string, rep envelope.Reply) {
	t.Helper()
	if rep.CorrelationID != id || rep.Status != 201 || string(rep.Body) != id {
		t.Errorf("waiter %s got reply %+v, want its own", id, rep)
	}
}

func TestRegistryDuplicate(t *testing.T) {
	r := correlation.NewRegistry()
	id := correlation.NewID()
	w := register(t, r, id)
	if _, err := r.Register(id); !errors.Is(err, correlation.ErrDuplicate) {
		t.Fatalf("second Register(%q) error = %v, want ErrDuplicate", id, err)
	}
	if r.Len() != 1 {
		t.Fatalf("Len() = %d after a rejected duplicate, want 1", r.Len())
	}
	// The rejected duplicate did not replace the first waiter.
	if !r.Deliver(reply(id)) {
		t.Fatal("Deliver to the first waiter = false")
	}
	checkReply(t, id, <-w.C())

	// Once answered the id is free again.
	w2 := register(t, r, id)
	if _, ok := w.Cancel(); ok {
		t.Error("Cancel of the first waiter returned a reply")
	}
	if r.Len() != 1 {
		t.Fatalf("the first waiter's Cancel removed the second: Len() = %d, want 1", r.Len())
	}
	w2.Cancel()
	if r.Len() != 0 {
		t.Fatalf("Len() = %d, want 0", r.Len())
	}
}

func TestRegistryDeliver(t *testing.T) {
	r := correlation.NewRegistry()
	if r.Deliver(reply(correlation.NewID())) {
		t.Error("Deliver of an unknown id = true")
	}

	id := correlation.NewID()
	w := register(t, r, id)
	if !r.Deliver(reply(id)) {
		t.Fatal("first Deliver = false")
	}
	if r.Deliver(reply(id)) {
		t.Error("second Deliver of the same id = true: a reply is delivered at most once")
	}
	if r.Len() != 0 {
		t.Errorf("Len() = %d after Deliver, want 0", r.Len())
	}
	checkReply(t, id, <-w.C())
	select {
	case rep := <-w.C():
		t.Errorf("second receive got %+v", rep)
	default:
	}
}

func TestWaiterCancel(t *testing.T) {
	r := correlation.NewRegistry()

	t.Run("idempotent", func(t *testing.T) {
		id := correlation.NewID()
		w := register(t, r, id)
		if w.ID() != id {
			t.Errorf("ID() = %q, want %q", w.ID(), id)
		}
		for i := range 3 {
			if rep, ok := w.Cancel(); ok {
				t.Errorf("Cancel #%d returned %+v", i+1, rep)
			}
		}
		if r.Len() != 0 {
			t.Errorf("Len() = %d, want 0", r.Len())
		}
		if r.Deliver(reply(id)) {
			t.Error("Deliver after Cancel = true")
		}
	})

	t.Run("returns a reply not yet received", func(t *testing.T) {
		id := correlation.NewID()
		w := register(t, r, id)
		r.Deliver(reply(id))
		rep, ok := w.Cancel()
		if !ok {
			t.Fatal("Cancel did not return the delivered reply")
		}
		checkReply(t, id, rep)
		if rep, ok := w.Cancel(); ok {
			t.Errorf("second Cancel returned the reply again: %+v", rep)
		}
	})

	t.Run("after receive", func(t *testing.T) {
		id := correlation.NewID()
		w := register(t, r, id)
		r.Deliver(reply(id))
		<-w.C()
		if rep, ok := w.Cancel(); ok {
			t.Errorf("Cancel after receive returned %+v", rep)
		}
	})
}

func TestRegistryClose(t *testing.T) {
	r := correlation.NewRegistry()
	answered := correlation.NewID()
	wa := register(t, r, answered)
	if !r.Deliver(reply(answered)) {
		t.Fatal("Deliver = false")
	}

	const waiting = 100
	var wg sync.WaitGroup
	woken := make(chan bool, waiting)
	for range waiting {
		w := register(t, r, correlation.NewID())
		wg.Go(func() {
			_, ok := <-w.C()
			woken <- ok
			if _, ok := w.Cancel(); ok {
				t.Error("Cancel after Close returned a reply")
			}
		})
	}

	r.Close()
	wg.Wait()
	close(woken)
	for ok := range woken {
		if ok {
			t.Fatal("a waiter received a value instead of the closed channel")
		}
	}
	if r.Len() != 0 {
		t.Errorf("Len() after Close = %d, want 0", r.Len())
	}

	// The reply delivered before Close is still there.
	select {
	case rep, ok := <-wa.C():
		if !ok {
			t.Fatal("Close closed the channel of a waiter whose reply was delivered")
		}
		checkReply(t, answered, rep)
	default:
		t.Fatal("the reply delivered before Close is gone")
	}

	if _, err := r.Register(correlation.NewID()); !errors.Is(err, correlation.ErrClosed) {
		t.Errorf("Register after Close error = %v, want ErrClosed", err)
	}
	if r.Deliver(reply(correlation.NewID())) {
		t.Error("Deliver after Close = true")
	}
	r.Close() // idempotent: must neither panic (double close) nor block
	if _, err := r.Register(correlation.NewID()); !errors.Is(err, correlation.ErrClosed) {
		t.Errorf("Register after second Close error = %v, want ErrClosed", err)
	}
}

// TestRegistryCloseConcurrent closes the registry while waiters register,
// receive and cancel: no panic (send on closed channel), no waiter left
// blocked, and nothing left registered.
func TestRegistryCloseConcurrent(t *testing.T) {
	r := correlation.NewRegistry()
	const n = 1_000
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			id := correlation.NewID()
			w, err := r.Register(id)
			if errors.Is(err, correlation.ErrClosed) {
				return
			}
			if err != nil {
				t.Errorf("Register: %v", err)
				return
			}
			defer w.Cancel()
			if i%2 == 0 {
				r.Deliver(reply(id))
			}
			if rep, ok := <-w.C(); ok {
				checkReply(t, id, rep)
			}
		})
	}
	close(start)
	r.Close()
	wg.Wait()
	if r.Len() != 0 {
		t.Errorf("Len() = %d, want 0", r.Len())
	}
}

// HoldProgress keeps the latest progress message with a waiter until
// TakeProgress takes it, then queues them in order; once TakeProgress found nothing, and for ids
// nobody waits for, HoldProgress refuses.
func TestRegistryHoldProgress(t *testing.T) {
	r := correlation.NewRegistry()
	w, err := r.Register("a")
	if err != nil {
		t.Fatal(err)
	}
	if r.HoldProgress(envelope.Reply{CorrelationID: "b", Progress: true}) {
		t.Error("held progress for an id nobody waits for")
	}
	for _, b := range []string{"1", "2"} {
		if !r.HoldProgress(envelope.Reply{CorrelationID: "a", Progress: true, Body: []byte(b)}) {
			t.Fatalf("progress %s not held", b)
		}
	}
	if p := w.TakeProgress(); p == nil || string(p.Body) != "2" {
		t.Fatalf("TakeProgress = %+v, want the latest (2)", p)
	}
	// Once QueueProgress was called, messages queue in order, the latest
	// MaxProgressKept of them.
	w.QueueProgress()
	for i := range correlation.MaxProgressKept + 2 {
		if !r.HoldProgress(envelope.Reply{CorrelationID: "a", Progress: true, Body: []byte(strconv.Itoa(i))}) {
			t.Fatalf("progress %d not held while taking", i)
		}
	}
	for i := 2; i < correlation.MaxProgressKept+2; i++ {
		if p := w.TakeProgress(); p == nil || string(p.Body) != strconv.Itoa(i) {
			t.Fatalf("TakeProgress = %+v, want %d", p, i)
		}
	}
	if p := w.TakeProgress(); p != nil {
		t.Fatalf("TakeProgress after the queue = %+v, want nil", p)
	}
	if r.HoldProgress(envelope.Reply{CorrelationID: "a", Progress: true}) {
		t.Error("held progress after TakeProgress found none")
	}
	w.Cancel()
}
