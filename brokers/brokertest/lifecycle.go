package brokertest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
)

// testReady: Ready is called once; a message published after it is
// delivered. (Ready is counted for every subscription of the suite.)
func (s *suite) testReady(t *testing.T) {
	pub, sub := s.pair(t)
	dest := s.dest(t)
	got := make(chan brokers.Message, 1)
	r := s.subscribe(t, sub, dest, collect(got), brokers.WithGroup(s.group(t)))
	want := message("after-ready", "key-ready", []byte("ready"))
	s.publish(t, pub, dest, want)
	s.checkMessage(t, want, receive(t, s, got, "delivery after Ready"))

	r.cancel()
	if !r.wait(s.f.Timeout) {
		t.Fatalf("brokertest: Subscribe did not return within %v of its context's end", s.f.Timeout)
	}
	if n := r.ready.Load(); n != 1 {
		t.Fatalf("brokertest: Ready called %d times, want exactly once", n)
	}
}

// testCancellation: when its context ends, Subscribe cancels the context of
// the running handler and returns nil; with a context that already ended it
// returns at once.
func (s *suite) testCancellation(t *testing.T) {
	pub, sub := s.pair(t)
	dest := s.dest(t)
	started, cancelled := newEvent(), newEvent()
	r := s.subscribe(t, sub, dest, func(ctx context.Context, m brokers.Message) error {
		started.fire()
		select {
		case <-ctx.Done():
			cancelled.fire()
			return ctx.Err()
		case <-time.After(s.f.Timeout):
			return errInjected
		}
	})
	s.publish(t, pub, dest, message("held", "key-held", []byte("x")))
	waitFor(t, s, started.C(), "handler start")
	r.cancel()
	waitFor(t, s, cancelled.C(), "cancellation of the handler's context")
	if !r.wait(s.f.Timeout) {
		t.Fatalf("brokertest: Subscribe did not return within %v of its context's end", s.f.Timeout)
	}
	if r.err != nil {
		t.Errorf("brokertest: Subscribe returned %v after its context ended, want nil", r.err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var err error
	if !s.within(func() {
		err = sub.Subscribe(ctx, dest, func(context.Context, brokers.Message) error { return nil })
	}) {
		t.Fatalf("brokertest: Subscribe with an ended context did not return within %v", s.f.Timeout)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("brokertest: Subscribe with an ended context returned %v, want nil or context.Canceled", err)
	}
}

// testPublishCancelledContext: Publish with an ended context fails.
func (s *suite) testPublishCancelledContext(t *testing.T) {
	pub, _ := s.pair(t)
	dest := s.dest(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var err error
	if !s.within(func() { err = pub.Publish(ctx, dest, message("cancelled", "key", []byte("x"))) }) {
		t.Fatalf("brokertest: Publish with a cancelled context did not return within %v", s.f.Timeout)
	}
	if err == nil {
		t.Fatal("brokertest: Publish with a cancelled context returned nil")
	}
}

// testClose: Close cancels running handlers, unblocks Subscribe, waits for
// the handlers and is idempotent; Publish and Subscribe afterwards fail with
// brokers.ErrClosed.
func (s *suite) testClose(t *testing.T) {
	pub, sub := s.pair(t)
	dest := s.dest(t)
	started := newEvent()
	var returned atomic.Bool
	r := s.subscribe(t, sub, dest, func(ctx context.Context, m brokers.Message) error {
		defer returned.Store(true)
		started.fire()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.f.Timeout):
			return errInjected
		}
	})
	s.publish(t, pub, dest, message("held", "key-held", []byte("x")))
	waitFor(t, s, started.C(), "handler start")

	s.close(t, "Subscriber", sub)
	if !returned.Load() {
		t.Error("brokertest: Subscriber.Close returned before the running handler did")
	}
	if !r.wait(s.f.Timeout) {
		t.Fatalf("brokertest: Subscribe did not return within %v of Close", s.f.Timeout)
	}
	if r.err != nil && !errors.Is(r.err, brokers.ErrClosed) {
		t.Errorf("brokertest: Subscribe returned %v after Close, want nil or brokers.ErrClosed", r.err)
	}
	s.close(t, "Subscriber (again)", sub)
	s.close(t, "Publisher", pub)
	s.close(t, "Publisher (again)", pub)

	ctx, cancel := context.WithTimeout(t.Context(), s.f.Timeout)
	defer cancel()
	var err error
	if !s.within(func() { err = pub.Publish(ctx, dest, message("after-close", "key", []byte("x"))) }) {
		t.Fatalf("brokertest: Publish after Close did not return within %v", s.f.Timeout)
	}
	if !errors.Is(err, brokers.ErrClosed) {
		t.Errorf("brokertest: Publish after Close returned %v, want brokers.ErrClosed", err)
	}
	if !s.within(func() {
		err = sub.Subscribe(ctx, dest, func(context.Context, brokers.Message) error { return nil })
	}) {
		t.Fatalf("brokertest: Subscribe after Close did not return within %v", s.f.Timeout)
	}
	if !errors.Is(err, brokers.ErrClosed) {
		t.Errorf("brokertest: Subscribe after Close returned %v, want brokers.ErrClosed", err)
	}
}

// unreachableBudget is the deadline of the Publish to an unreachable broker;
// unreachableSlack is how late after it Publish may still return.
const (
	unreachableBudget = time.Second
	unreachableSlack  = 2 * time.Second
)

// testUnreachable: Publish to a broker that does not answer fails with
// brokers.ErrUnavailable within its context's deadline.
func (s *suite) testUnreachable(t *testing.T) {
	if s.f.Unreachable == nil {
		t.Skip("Features.Unreachable not set")
	}
	pub := s.f.Unreachable(t)
	if pub == nil {
		t.Fatal("brokertest: Features.Unreachable returned nil")
	}
	t.Cleanup(func() {
		// Closing may report the broken connection; it must not hang.
		if !s.within(func() { _ = pub.Close() }) {
			t.Errorf("brokertest: Close of the unreachable publisher did not return within %v", s.f.Timeout)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), unreachableBudget)
	defer cancel()
	start := time.Now()
	var err error
	if !withinTime(unreachableBudget+unreachableSlack, func() {
		err = pub.Publish(ctx, "brokertest.unreachable", message("unreachable", "key", []byte("x")))
	}) {
		t.Fatalf("brokertest: Publish to an unreachable broker ignored its %v deadline (still blocked after %v)",
			unreachableBudget, unreachableBudget+unreachableSlack)
	}
	switch {
	case err == nil:
		t.Fatal("brokertest: Publish to an unreachable broker returned nil")
	case !errors.Is(err, brokers.ErrUnavailable):
		t.Errorf("brokertest: Publish to an unreachable broker returned %v (after %v), want brokers.ErrUnavailable",
			err, time.Since(start).Round(time.Millisecond))
	}
}
