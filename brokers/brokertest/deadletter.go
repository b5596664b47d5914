package brokertest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/syncgate/syncgate/brokers"
)

// deadLetter is one call of the DeadLetter callback.
type deadLetter struct {
	m   brokers.Message
	err error
}

// testDeadLetter: a message whose handler fails on every attempt is handed
// to the handler exactly MaxDeliveries times, then given up on: the
// DeadLetter callback gets it once, unaltered, with the handler's error, and
// the next message of its key is delivered (the poison one holds nothing).
func (s *suite) testDeadLetter(t *testing.T) {
	if s.f.MaxDeliveries <= 0 {
		t.Skip("backend declares no dead-lettering (Features.MaxDeliveries 0)")
	}
	pub, sub := s.pair(t)
	dest := s.dest(t)
	var (
		mu       sync.Mutex
		attempts int
	)
	next := make(chan brokers.Message, 4)
	letters := make(chan deadLetter, 4)
	s.subscribe(t, sub, dest, func(ctx context.Context, m brokers.Message) error {
		if m.Headers[idHeader] != "poison" {
			return collect(next)(ctx, m)
		}
		mu.Lock()
		attempts++
		mu.Unlock()
		if len(m.Body) > 0 {
			m.Body[0] ^= 0xff // what a failed attempt does to its copy stays there
		}
		return errInjected
	}, brokers.WithGroup(s.group(t)), brokers.WithDeadLetter(func(_ context.Context, m brokers.Message, err error) {
		letters <- deadLetter{m.Clone(), err}
	}))

	poison := message("poison", "key-dead-letter", []byte("never handled"))
	after := message("after-poison", "key-dead-letter", []byte("handled"))
	s.publish(t, pub, dest, poison)
	s.publish(t, pub, dest, after)

	dl := receive(t, s, letters, "DeadLetter call for a message that always fails")
	s.checkMessage(t, poison, dl.m)
	if !errors.Is(dl.err, errInjected) {
		t.Errorf("brokertest: DeadLetter got error %v, want the handler's (%v)", dl.err, errInjected)
	}
	s.checkMessage(t, after, receive(t, s, next, "delivery of the message behind a dead-lettered one"))
	// One more message through the same key: by the time it is handled,
	// every attempt at the poison one that will ever happen has happened
	// (order per key), so the counts below are final.
	last := message("last", "key-dead-letter", []byte("last"))
	s.publish(t, pub, dest, last)
	s.checkMessage(t, last, receive(t, s, next, "delivery of a later message of the key"))
	mu.Lock()
	n := attempts
	mu.Unlock()
	if n != s.f.MaxDeliveries {
		t.Errorf("brokertest: the failing handler was called %d times, want MaxDeliveries = %d", n, s.f.MaxDeliveries)
	}
	select {
	case dl := <-letters:
		t.Errorf("brokertest: DeadLetter called again, for %q", dl.m.Headers[idHeader])
	default:
	}
}
