package brokertest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
)

// idHeader names the header by which the suite recognises its messages.
const idHeader = "brokertest-id"

// pair calls setup and closes what it returned when the test ends.
func (s *suite) pair(t *testing.T) (brokers.Publisher, brokers.Subscriber) {
	t.Helper()
	pub, sub := s.setup(t)
	if pub == nil || sub == nil {
		t.Fatalf("brokertest: Setup returned a nil publisher (%v) or subscriber (%v)", pub == nil, sub == nil)
	}
	t.Cleanup(func() {
		s.close(t, "Subscriber", sub)
		s.close(t, "Publisher", pub)
	})
	return pub, sub
}

// close calls c.Close and reports an error or a hang.
func (s *suite) close(t *testing.T, what string, c io.Closer) {
	t.Helper()
	var err error
	if !s.within(func() { err = c.Close() }) {
		t.Errorf("brokertest: %s.Close did not return within %v", what, s.f.Timeout)
	} else if err != nil {
		t.Errorf("brokertest: %s.Close: %v", what, err)
	}
}

// within runs fn in a goroutine and reports whether it returned within the
// timeout. A call that hangs is left behind: the test has failed anyway.
func (s *suite) within(fn func()) bool {
	return withinTime(s.f.Timeout, fn)
}

func withinTime(d time.Duration, fn func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// dest returns a fresh destination.
func (s *suite) dest(t *testing.T) string {
	t.Helper()
	if s.f.Destination != nil {
		d := s.f.Destination(t)
		if d == "" {
			t.Fatal("brokertest: Features.Destination returned an empty name")
		}
		return d
	}
	return "brokertest." + sanitize(t.Name()) + "." + random()
}

// group returns a fresh consumer group name.
func (s *suite) group(t *testing.T) string {
	t.Helper()
	return "brokertest-" + random()
}

func random() string { return fmt.Sprintf("%016x", rand.Uint64()) }

// sanitize keeps a name within what Kafka topics and AMQP queues accept.
func sanitize(name string) string {
	name = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '-'
	}, name)
	if len(name) > 180 {
		name = name[len(name)-180:]
	}
	return name
}

// publish publishes m and fails the test on error.
func (s *suite) publish(t *testing.T, pub brokers.Publisher, dest string, m brokers.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), s.f.Timeout)
	defer cancel()
	if err := pub.Publish(ctx, dest, m); err != nil {
		t.Fatalf("brokertest: Publish(%q, %s): %v", dest, m.Headers[idHeader], err)
	}
}

// running is one Subscribe call running in the background.
type running struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when Subscribe returned
	err    error         // Subscribe's result, set before done is closed
	ready  atomic.Int32  // calls of the Ready callback
}

// subscribe runs sub.Subscribe in a goroutine and returns once Ready was
// called. When the test ends it cancels the subscription, waits for
// Subscribe to return and checks that Ready was called exactly once.
func (s *suite) subscribe(t *testing.T, sub brokers.Subscriber, source string, h brokers.Handler, opts ...brokers.SubscribeOption) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	r := &running{cancel: cancel, done: make(chan struct{})}
	ready := make(chan struct{})
	opts = append(opts, brokers.WithReady(func() {
		if r.ready.Add(1) == 1 {
			close(ready)
		}
	}))
	go func() {
		defer close(r.done)
		r.err = sub.Subscribe(ctx, source, h, opts...)
	}()
	t.Cleanup(func() {
		r.cancel()
		if !r.wait(s.f.Timeout) {
			t.Errorf("brokertest: Subscribe(%q) did not return within %v of its context's end", source, s.f.Timeout)
			return
		}
		if n := r.ready.Load(); n != 1 {
			t.Errorf("brokertest: Subscribe(%q) called Ready %d times, want exactly once", source, n)
		}
	})
	select {
	case <-ready:
	case <-r.done:
		t.Fatalf("brokertest: Subscribe(%q) returned %v before calling Ready", source, r.err)
	case <-time.After(s.f.Timeout):
		t.Fatalf("brokertest: Subscribe(%q) did not call Ready within %v", source, s.f.Timeout)
	}
	return r
}

// wait reports whether Subscribe returned within d.
func (r *running) wait(d time.Duration) bool {
	select {
	case <-r.done:
		return true
	case <-time.After(d):
		return false
	}
}

// receive returns the next value from ch, failing the test after the timeout.
func receive[T any](t *testing.T, s *suite, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(s.f.Timeout):
		t.Fatalf("brokertest: no %s within %v", what, s.f.Timeout)
		panic("unreachable")
	}
}

// waitFor fails the test unless ch is closed (or sends) within the timeout.
func waitFor(t *testing.T, s *suite, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(s.f.Timeout):
		t.Fatalf("brokertest: %s did not happen within %v", what, s.f.Timeout)
	}
}

// collect is a handler that acknowledges every message and sends it to ch.
func collect(ch chan<- brokers.Message) brokers.Handler {
	return func(ctx context.Context, m brokers.Message) error {
		select {
		case ch <- m:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// message returns a message identified by id.
func message(id, key string, body []byte) brokers.Message {
	return brokers.Message{Key: key, Headers: map[string]string{idHeader: id}, Body: body}
}

// checkMessage reports how got differs from want: key (unless the backend
// does not carry keys), every header want has, body byte for byte.
func (s *suite) checkMessage(t *testing.T, want, got brokers.Message) {
	t.Helper()
	id := want.Headers[idHeader]
	if !s.f.NoKey && got.Key != want.Key {
		t.Errorf("brokertest: message %s: key %q, want %q", id, got.Key, want.Key)
	}
	for k, v := range want.Headers {
		gv, ok := got.Headers[k]
		switch {
		case !ok:
			t.Errorf("brokertest: message %s: header %q missing", id, k)
		case gv != v:
			t.Errorf("brokertest: message %s: header %q = %q, want %q", id, k, short(gv), short(v))
		}
	}
	if !bytes.Equal(got.Body, want.Body) {
		t.Errorf("brokertest: message %s: body differs: %s", id, bodyDiff(want.Body, got.Body))
	}
}

func short(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%s…(%d bytes)", s[:64], len(s))
	}
	return s
}

func bodyDiff(want, got []byte) string {
	if len(want) != len(got) {
		return fmt.Sprintf("%d bytes, want %d", len(got), len(want))
	}
	for i := range want {
		if want[i] != got[i] {
			return fmt.Sprintf("byte %d is %#02x, want %#02x", i, got[i], want[i])
		}
	}
	return "equal"
}

// event is a one-shot signal that may be fired any number of times, so a
// backend that delivers more often than expected fails the test instead of
// panicking in its goroutine.
type event struct {
	once sync.Once
	ch   chan struct{}
}

func newEvent() *event { return &event{ch: make(chan struct{})} }

func (e *event) fire() { e.once.Do(func() { close(e.ch) }) }

// C is closed once the event fired.
func (e *event) C() <-chan struct{} { return e.ch }
