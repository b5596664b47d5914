package brokertest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
)

// testConcurrentPublishers: messages published from many goroutines at once
// are all delivered, each once.
func (s *suite) testConcurrentPublishers(t *testing.T) {
	const publishers, each = 8, 100
	pub, sub := s.pair(t)
	dest := s.dest(t)
	got := make(chan brokers.Message, publishers*each)
	s.subscribe(t, sub, dest, collect(got), brokers.WithConcurrency(4))

	errs := make(chan error, publishers)
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), s.f.Timeout)
			defer cancel()
			for i := range each {
				id := fmt.Sprintf("p%d-m%d", p, i)
				if err := pub.Publish(ctx, dest, message(id, id, []byte(id))); err != nil {
					errs <- fmt.Errorf("publisher %d, message %d: %w", p, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("brokertest: concurrent Publish: %v", err)
	}
	if t.Failed() {
		return
	}
	seen := make(map[string]bool, publishers*each)
	for len(seen) < publishers*each {
		m := receive(t, s, got, fmt.Sprintf("delivery (%d of %d so far)", len(seen), publishers*each))
		id := m.Headers[idHeader]
		if seen[id] {
			t.Fatalf("brokertest: message %s delivered twice", id)
		}
		seen[id] = true
		if string(m.Body) != id {
			t.Fatalf("brokertest: message %s has body %q", id, m.Body)
		}
	}
}

// overlapProbe is how long the Concurrency subtest holds n handlers to see
// whether the backend starts more than n.
const overlapProbe = 50 * time.Millisecond

// testConcurrency: WithConcurrency(n) runs n handlers at once, never more.
func (s *suite) testConcurrency(t *testing.T) {
	// 64 distinct keys spread over every partition or shard of a backend
	// that parallelises by key.
	const n, messages = 4, 64
	pub, sub := s.pair(t)
	dest := s.dest(t)

	var (
		running, peak    atomic.Int32
		reached, release = newEvent(), newEvent()
		probe            sync.Once
	)
	got := make(chan string, messages)
	s.subscribe(t, sub, dest, func(ctx context.Context, m brokers.Message) error {
		cur := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
		}
		if cur >= n {
			reached.fire()
			// Not a synchronisation but a probe: while n handlers hold
			// their slots, a backend that runs more than n would start
			// another one. The publisher may be waiting for room meanwhile.
			probe.Do(func() { time.AfterFunc(overlapProbe, release.fire) })
		}
		select { // hold the slot until n handlers ran at once
		case <-release.C():
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.f.Timeout):
		}
		select {
		case got <- m.Headers[idHeader]:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, brokers.WithConcurrency(n))

	for i := range messages {
		s.publish(t, pub, dest, message(fmt.Sprintf("m-%d", i), fmt.Sprintf("key-%d", i), []byte("x")))
	}
	select {
	case <-reached.C():
	case <-time.After(s.f.Timeout):
		release.fire()
		t.Fatalf("brokertest: WithConcurrency(%d) ran at most %d handlers at once within %v", n, peak.Load(), s.f.Timeout)
	}
	seen := make(map[string]bool, messages)
	for len(seen) < messages {
		id := receive(t, s, got, fmt.Sprintf("delivery (%d of %d so far)", len(seen), messages))
		if seen[id] {
			t.Fatalf("brokertest: message %s delivered twice", id)
		}
		seen[id] = true
	}
	if p := peak.Load(); p > n {
		t.Fatalf("brokertest: WithConcurrency(%d) ran %d handlers at once", n, p)
	}
}
