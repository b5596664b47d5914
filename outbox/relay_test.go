package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/internal/testenv"
	"github.com/syncgate/syncgate/outbox"
)

// flakyBroker refuses every publish while down is set, and records the
// ones it took.
type flakyBroker struct {
	down     atomic.Bool
	refusals atomic.Int64
	mu       sync.Mutex
	got      []string
}

func (b *flakyBroker) Publish(_ context.Context, dest string, m brokers.Message) error {
	if b.down.Load() {
		b.refusals.Add(1)
		return fmt.Errorf("%w: broker down", brokers.ErrUnavailable)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got = append(b.got, m.Headers["correlation-id"])
	return nil
}

func (b *flakyBroker) published() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.got...)
}

// While the broker is down nothing leaves the outbox; once it is back
// every item is published once, in the order it was queued, and the
// expired ones are dropped instead; on PostgreSQL, with two relays, one
// leads, so nothing is published twice and the order holds.
func TestRelay(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			ctx := t.Context()
			open, _ := k.open(t, 1000)
			relays := 1
			if k.name == "postgres" {
				relays = 2
			}
			stores := make([]outbox.Store, relays)
			stores[0] = open()
			for i := 1; i < relays; i++ {
				stores[i] = open()
			}
			var want []string
			for i := range 40 {
				it := item(i)
				if i%10 == 3 {
					it.Deadline = time.Now().Add(-time.Second)
				} else {
					want = append(want, it.ID)
				}
				if err := stores[0].Put(ctx, it); err != nil {
					t.Fatal(err)
				}
			}
			b := &flakyBroker{}
			b.down.Store(true)
			var expired atomic.Int64
			rctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for _, s := range stores {
				r := &outbox.Relay{Store: s, Publisher: b, Poll: 10 * time.Millisecond, Retry: 20 * time.Millisecond, Batch: 8,
					Expired: func(outbox.Item) { expired.Add(1) }}
				wg.Go(func() { _ = r.Run(rctx) })
			}
			testenv.Eventually(t, 5*time.Second, "the relays tried the broker", func() bool { return b.refusals.Load() >= 3 })
			if n := len(b.published()); n != 0 {
				t.Fatalf("%d published while the broker was down", n)
			}
			b.down.Store(false)
			testenv.Eventually(t, 10*time.Second, "every item was published", func() bool { return len(b.published()) >= len(want) })
			cancel()
			wg.Wait()
			for _, s := range stores {
				defer s.Close()
			}
			got := b.published()
			seen := map[string]bool{}
			for _, id := range got {
				if seen[id] {
					t.Errorf("%s published twice", id)
				}
				seen[id] = true
			}
			if len(got) != len(want) || expired.Load() != 4 {
				t.Fatalf("published %d (want %d), expired %d (want 4)", len(got), len(want), expired.Load())
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("published in order %v, want %v", got, want)
				}
			}
			if depth, _, _ := stores[0].Stats(ctx); depth != 0 {
				t.Errorf("%d items left", depth)
			}
		})
	}
}

// On PostgreSQL one relay leads; when its node stops (its connection
// ends), another takes over at once, and publishes what the first had
// claimed without waiting for the leases to run out.
func TestPGLeadHandsOver(t *testing.T) {
	open, _ := kinds[1].open(t, 1000)
	ctx := t.Context()
	a, b := open().(*outbox.PG), open().(*outbox.PG)
	defer b.Close()
	if leads, err := a.Lead(ctx); err != nil || !leads {
		t.Fatalf("first Lead: %v, %v; want the lead", leads, err)
	}
	if leads, err := b.Lead(ctx); err != nil || leads {
		t.Fatalf("second store's Lead while the first leads: %v, %v", leads, err)
	}
	if leads, err := a.Lead(ctx); err != nil || !leads {
		t.Fatalf("the leader's Lead again: %v, %v", leads, err)
	}
	for i := range 3 {
		if err := a.Put(ctx, item(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := a.Claim(ctx, 2, time.Hour); err != nil || len(got) != 2 {
		t.Fatalf("Claim: %d, %v", len(got), err)
	}
	a.Close() // its node stops mid-round
	if leads, err := b.Lead(ctx); err != nil || !leads {
		t.Fatalf("Lead after the leader closed: %v, %v; want the lead", leads, err)
	}
	got, err := b.Claim(ctx, 10, time.Minute)
	if err != nil || len(got) != 3 || got[0].ID != "id-0" || got[2].ID != "id-2" {
		t.Fatalf("new leader's Claim = %v, %v; want the 3 items in order, leases freed", got, err)
	}
}

// refusingBroker refuses the messages of one id for good, as a broker
// refuses a message too large or a destination that is gone.
type refusingBroker struct {
	flakyBroker
	refuse string
}

func (b *refusingBroker) Publish(ctx context.Context, dest string, m brokers.Message) error {
	if m.Headers["correlation-id"] == b.refuse {
		return fmt.Errorf("%w: no such topic", brokers.ErrUnroutable)
	}
	return b.flakyBroker.Publish(ctx, dest, m)
}

// An item the broker refuses for good is dropped and told to Failed; it
// does not hold up the items behind it.
func TestRelayDropsWhatTheBrokerRefusesForGood(t *testing.T) {
	open, _ := kinds[0].open(t, 100)
	s := open()
	defer s.Close()
	for i := range 3 {
		if err := s.Put(t.Context(), item(i)); err != nil {
			t.Fatal(err)
		}
	}
	b := &refusingBroker{refuse: "id-0"}
	failed := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	r := &outbox.Relay{Store: s, Publisher: b, Poll: 10 * time.Millisecond, Failed: func(it outbox.Item, err error) {
		if errors.Is(err, brokers.ErrUnroutable) {
			failed <- it.ID
		}
	}}
	go func() { defer close(done); _ = r.Run(ctx) }()
	testenv.Eventually(t, 5*time.Second, "the items behind were published", func() bool { return len(b.published()) == 2 })
	cancel()
	<-done
	if got := b.published(); got[0] != "id-1" || got[1] != "id-2" {
		t.Errorf("published %v, want [id-1 id-2]", got)
	}
	select {
	case id := <-failed:
		if id != "id-0" {
			t.Errorf("Failed told of %s, want id-0", id)
		}
	default:
		t.Error("Failed was not told of the refused item")
	}
	if depth, _, _ := s.Stats(t.Context()); depth != 0 {
		t.Errorf("%d items left", depth)
	}
}
