package brokertest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
)

// errInjected is what the suite's handlers return to refuse a message.
var errInjected = errors.New("brokertest: injected handler failure")

// testRedeliveryAfterHandlerError: a message whose handler failed comes
// again, unaltered by what the failing handler did to its copy, and (unless
// NoOrderPerKey) before the next message of its key.
func (s *suite) testRedeliveryAfterHandlerError(t *testing.T) {
	pub, sub := s.pair(t)
	dest := s.dest(t)
	got := make(chan brokers.Message, 8)
	var calls atomic.Int32
	s.subscribe(t, sub, dest, func(ctx context.Context, m brokers.Message) error {
		first := calls.Add(1) == 1
		select {
		case got <- m.Clone():
		case <-ctx.Done():
			return ctx.Err()
		}
		if first {
			// A handler may scribble on its copy; the redelivery must not see it.
			if len(m.Body) > 0 {
				m.Body[0] ^= 0xff
			}
			if m.Headers != nil {
				m.Headers["x-state"] = "edited by the failed attempt"
			}
			return errInjected
		}
		return nil
	}, brokers.WithGroup(s.group(t)))

	first := message("fails-once", "key-redelivery", []byte("payload"))
	first.Headers["x-state"] = "original"
	second := message("after-it", "key-redelivery", []byte("next"))
	s.publish(t, pub, dest, first)
	s.publish(t, pub, dest, second)

	s.checkMessage(t, first, receive(t, s, got, "first attempt"))
	var sawFirst, sawSecond bool
	for !sawFirst || !sawSecond {
		m := receive(t, s, got, "redelivery after a handler error")
		switch id := m.Headers[idHeader]; id {
		case "fails-once":
			if sawFirst {
				t.Fatal("brokertest: message delivered again after its handler succeeded")
			}
			sawFirst = true
			s.checkMessage(t, first, m)
		case "after-it":
			if sawSecond {
				t.Fatal("brokertest: message delivered twice without a failure")
			}
			if !sawFirst && !s.f.NoOrderPerKey {
				t.Error("brokertest: the next message of the key overtook the redelivery of a failed one")
			}
			sawSecond = true
			s.checkMessage(t, second, m)
		default:
			t.Fatalf("brokertest: unexpected delivery %q", id)
		}
	}
}

// testRedeliveryAfterConsumerCrash: a consumer acknowledges m1, then stops
// (its context ends) while handling m2. A new subscription of the group, on
// a new connection, gets m2 again but not m1.
func (s *suite) testRedeliveryAfterConsumerCrash(t *testing.T) {
	if s.f.NoConsumerCrashRedelivery {
		t.Skip("backend declares NoConsumerCrashRedelivery")
	}
	pub, sub1 := s.pair(t)
	_, sub2 := s.pair(t)
	dest, group := s.dest(t), s.group(t)

	acked, holding := newEvent(), newEvent()
	crashed := s.subscribe(t, sub1, dest, func(ctx context.Context, m brokers.Message) error {
		switch m.Headers[idHeader] {
		case "acked":
			acked.fire()
			return nil
		case "in-flight":
			holding.fire()
			select { // never finishes: stopped while holding the message
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(s.f.Timeout):
				return errInjected
			}
		}
		return nil
	}, brokers.WithGroup(group))

	m1 := message("acked", "key-crash", []byte("one"))
	m2 := message("in-flight", "key-crash", []byte("two"))
	s.publish(t, pub, dest, m1)
	waitFor(t, s, acked.C(), "delivery of the first message")
	s.publish(t, pub, dest, m2)
	waitFor(t, s, holding.C(), "delivery of the second message")
	crashed.cancel()
	if !crashed.wait(s.f.Timeout) {
		t.Fatalf("brokertest: Subscribe did not return within %v of its context's end", s.f.Timeout)
	}

	got := make(chan brokers.Message, 4)
	s.subscribe(t, sub2, dest, collect(got), brokers.WithGroup(group))
	m := receive(t, s, got, "redelivery to the new subscription")
	switch m.Headers[idHeader] {
	case "in-flight":
		s.checkMessage(t, m2, m)
	case "acked":
		t.Fatal("brokertest: an acknowledged message was delivered again after its consumer stopped")
	default:
		t.Fatalf("brokertest: unexpected delivery %q", m.Headers[idHeader])
	}
	// What the new subscription gets next is m3, not m1.
	m3 := message("after-crash", "key-crash", []byte("three"))
	s.publish(t, pub, dest, m3)
	m = receive(t, s, got, "delivery after the redelivery")
	if id := m.Headers[idHeader]; id != "after-crash" {
		t.Fatalf("brokertest: got %q, want the message published after the redelivery", id)
	}
	s.checkMessage(t, m3, m)
}

// testCompetingConsumers: two subscriptions of one group share the messages:
// each message is handled once overall and both handle some.
func (s *suite) testCompetingConsumers(t *testing.T) {
	const n = 100
	pub, sub := s.pair(t)
	dest, group := s.dest(t), s.group(t)

	type delivery struct {
		id  string
		who int
	}
	got := make(chan delivery, 2*n)
	// Each subscription holds its first message until the other one got a
	// message too, so one fast consumer cannot take all the work.
	var (
		first [2]atomic.Bool
		count atomic.Int32
		both  = newEvent()
	)
	handler := func(who int) brokers.Handler {
		return func(ctx context.Context, m brokers.Message) error {
			select {
			case got <- delivery{m.Headers[idHeader], who}:
			case <-ctx.Done():
				return ctx.Err()
			}
			if !first[who].Swap(true) {
				if count.Add(1) == 2 {
					both.fire()
				}
				select {
				case <-both.C():
				case <-ctx.Done():
				case <-time.After(s.f.Timeout):
				}
			}
			return nil
		}
	}
	s.subscribe(t, sub, dest, handler(0), brokers.WithGroup(group))
	s.subscribe(t, sub, dest, handler(1), brokers.WithGroup(group))

	for i := range n {
		s.publish(t, pub, dest, message(fmt.Sprintf("m-%d", i), fmt.Sprintf("key-%d", i), []byte("work")))
	}
	seen := make(map[string]bool, n)
	var per [2]int
	for len(seen) < n {
		d := receive(t, s, got, fmt.Sprintf("delivery (%d of %d so far)", len(seen), n))
		if seen[d.id] {
			t.Fatalf("brokertest: message %s handled twice in one group", d.id)
		}
		seen[d.id] = true
		per[d.who]++
	}
	if per[0] == 0 || per[1] == 0 {
		t.Fatalf("brokertest: the group's subscriptions handled %d and %d messages, want both some", per[0], per[1])
	}
}
