package gateway_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
)

// The adoption policy on the in-memory cluster state, in a synctest bubble:
// rounds come every second of fake time, and synctest.Wait lets every
// goroutine a round started settle before the test looks.

// subscriber plays the broker: it records each Subscribe, hands the handler
// one message, and holds the subscription until its context ends.
type subscriber struct {
	mu     sync.Mutex
	calls  []brokers.SubscribeConfig
	source []string
	active map[string]int
	fail   map[string]error // Subscribe of the source fails at once
}

func newSubscriber() *subscriber {
	return &subscriber{active: map[string]int{}, fail: map[string]error{}}
}

func (s *subscriber) Subscribe(ctx context.Context, source string, h brokers.Handler, opts ...brokers.SubscribeOption) error {
	s.mu.Lock()
	s.calls = append(s.calls, brokers.NewSubscribeConfig(opts...))
	s.source = append(s.source, source)
	err := s.fail[source]
	if err == nil {
		s.active[source]++
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	defer func() {
		s.mu.Lock()
		s.active[source]--
		s.mu.Unlock()
	}()
	if err := h(ctx, brokers.Message{Key: source}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// subscribed returns how many times source was subscribed, and how many
// of those subscriptions are still running.
func (s *subscriber) subscribed(source string) (calls, active int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, src := range s.source {
		if src == source {
			calls++
		}
	}
	return calls, s.active[source]
}

type adopterRun struct {
	*gateway.Adopter
	handled chan string
	stop    func()
}

// startAdopter runs node's adopter over r every second; stop ends it and
// waits for it.
func startAdopter(t *testing.T, r *correlation.MemoryRouter, node string, sub *subscriber, keep time.Duration) *adopterRun {
	t.Helper()
	handled := make(chan string, 16)
	a := gateway.NewAdopter(gateway.AdopterConfig{
		Node: node, Members: r, Subscriber: sub, Every: time.Second, Keep: keep, Concurrency: 4,
		Handler: func(_ context.Context, m brokers.Message) error {
			handled <- m.Key
			return nil
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(ctx)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return &adopterRun{Adopter: a, handled: handled, stop: stop}
}

func adoptedBy(t *testing.T, r *correlation.MemoryRouter, node string) string {
	t.Helper()
	by, err := r.AdoptedBy(t.Context(), node)
	if err != nil {
		t.Fatal(err)
	}
	return by
}

// rounds lets n rounds of every adopter pass, and what they started settle.
func rounds(n int) {
	time.Sleep(time.Duration(n) * time.Second)
	synctest.Wait()
}

func register(t *testing.T, r *correlation.MemoryRouter, nodes ...string) {
	t.Helper()
	for _, n := range nodes {
		if err := r.Register(t.Context(), n, "reply."+n); err != nil {
			t.Fatal(err)
		}
	}
}

// A dead node (registered, no lease) is adopted: its reply address is
// consumed, as an inbox, with the node's own handler, once, for as long as
// it stays dead; when it is back, the adopter lets go.
func TestAdopterAdoptsADeadNodeAndHandsItBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := correlation.NewMemoryRouter(correlation.NewMemoryStore(correlation.MemoryStoreConfig{}))
		register(t, r, "a", "b")
		sub := newSubscriber()
		b := startAdopter(t, r, "b", sub, time.Hour)
		// b is not live either (no lease here), but never adopts itself.
		rounds(1)
		if got := b.Adopting(); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("b adopts %v, want [a]", got)
		}
		if calls, active := sub.subscribed("reply.a"); calls != 1 || active != 1 {
			t.Fatalf("reply.a subscribed %d times, %d running; want 1, 1", calls, active)
		}
		if c := sub.calls[0]; !c.Inbox || c.Concurrency != 4 {
			t.Errorf("subscription %+v, want an inbox with concurrency 4", c)
		}
		select {
		case m := <-b.handled:
			if m != "reply.a" {
				t.Errorf("handled a message of %q", m)
			}
		default:
			t.Error("the adopted address's message did not reach the handler")
		}
		if by := adoptedBy(t, r, "a"); by != "b" {
			t.Fatalf("AdoptedBy(a) = %q, want b", by)
		}
		// Kept past the adoption's own TTL (three rounds), with one consumer.
		rounds(5)
		if calls, active := sub.subscribed("reply.a"); calls != 1 || active != 1 || adoptedBy(t, r, "a") != "b" {
			t.Fatalf("after 5 rounds: %d subscriptions, %d running, adopted by %q", calls, active, adoptedBy(t, r, "a"))
		}

		// a is back: b lets go within a round.
		lease, err := r.Join(t.Context(), "a", time.Second, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer lease.Close()
		rounds(1)
		if got := b.Adopting(); len(got) != 0 {
			t.Fatalf("b still adopts %v after a came back", got)
		}
		if _, active := sub.subscribed("reply.a"); active != 0 {
			t.Fatal("reply.a still consumed by b after a came back")
		}
		if by := adoptedBy(t, r, "a"); by != "" {
			t.Fatalf("AdoptedBy(a) = %q after the hand-back", by)
		}
		if m, _ := r.Members(t.Context()); m["a"] != "reply.a" {
			t.Fatalf("a forgotten on its return: %v", m)
		}
		b.stop()
	})
}

// Once no request of the dead node can still be waiting (Keep), the
// adoption ends and the node is forgotten.
func TestAdopterForgetsAfterKeep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := correlation.NewMemoryRouter(correlation.NewMemoryStore(correlation.MemoryStoreConfig{}))
		register(t, r, "a", "b")
		sub := newSubscriber()
		b := startAdopter(t, r, "b", sub, 3*time.Second)
		rounds(1)
		if got := b.Adopting(); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("b adopts %v, want [a]", got)
		}
		// Adopted at round 1: still kept at round 4 (3s), over at round 5.
		rounds(3)
		if got := b.Adopting(); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("b adopts %v at keep, want [a]", got)
		}
		rounds(1)
		if got := b.Adopting(); len(got) != 0 {
			t.Fatalf("b still adopts %v after keep", got)
		}
		if m, _ := r.Members(t.Context()); len(m) != 1 || m["b"] == "" {
			t.Fatalf("members after the adoption = %v, want only b", m)
		}
		if calls, active := sub.subscribed("reply.a"); calls != 1 || active != 0 || adoptedBy(t, r, "a") != "" {
			t.Fatalf("after keep: %d subscriptions, %d running, adopted by %q", calls, active, adoptedBy(t, r, "a"))
		}
		// Forgotten: not adopted again.
		rounds(3)
		if calls, _ := sub.subscribed("reply.a"); calls != 1 {
			t.Fatalf("a forgotten node was adopted again: %d subscriptions", calls)
		}
		b.stop()
	})
}

// Two live nodes look for the same dead node in the same round: one
// adopts it, once, and keeps it; when that one stops, it gives the
// adoption up and the other takes over.
func TestAdoptersRaceForOneDeadNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := correlation.NewMemoryRouter(correlation.NewMemoryStore(correlation.MemoryStoreConfig{}))
		register(t, r, "a", "b", "c")
		sub := newSubscriber()
		b := startAdopter(t, r, "b", sub, time.Hour)
		c := startAdopter(t, r, "c", sub, time.Hour)
		// b and c are dead to each other too (no leases here): each may
		// adopt the other, but a has exactly one adopter.
		rounds(1)
		winner, loser := b, c
		if slices.Contains(c.Adopting(), "a") {
			winner, loser = c, b
		}
		if !slices.Contains(winner.Adopting(), "a") || slices.Contains(loser.Adopting(), "a") {
			t.Fatalf("b adopts %v, c adopts %v; want a adopted by exactly one", b.Adopting(), c.Adopting())
		}
		if calls, active := sub.subscribed("reply.a"); calls != 1 || active != 1 {
			t.Fatalf("reply.a subscribed %d times, %d running; want 1, 1", calls, active)
		}
		rounds(10)
		if calls, active := sub.subscribed("reply.a"); calls != 1 || active != 1 || slices.Contains(loser.Adopting(), "a") {
			t.Fatalf("after 10 rounds: %d subscriptions, %d running; loser adopts %v", calls, active, loser.Adopting())
		}
		winner.stop()
		rounds(1)
		if !slices.Contains(loser.Adopting(), "a") {
			t.Fatalf("the other node did not take over a: adopts %v", loser.Adopting())
		}
		if calls, active := sub.subscribed("reply.a"); calls != 2 || active != 1 {
			t.Fatalf("after the hand-over: %d subscriptions, %d running; want 2, 1", calls, active)
		}
		loser.stop()
	})
}

// A consumer that fails is retried at the next round.
func TestAdopterRetriesAFailedConsumer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := correlation.NewMemoryRouter(correlation.NewMemoryStore(correlation.MemoryStoreConfig{}))
		register(t, r, "a", "b")
		sub := newSubscriber()
		sub.fail["reply.a"] = errors.New("broker says no")
		b := startAdopter(t, r, "b", sub, time.Hour)
		rounds(1)
		if calls, _ := sub.subscribed("reply.a"); calls != 1 || len(b.Adopting()) != 0 {
			t.Fatalf("after a failed consumer: %d subscriptions, adopting %v", calls, b.Adopting())
		}
		sub.mu.Lock()
		delete(sub.fail, "reply.a")
		sub.mu.Unlock()
		rounds(1)
		if calls, active := sub.subscribed("reply.a"); calls != 2 || active != 1 || !slices.Equal(b.Adopting(), []string{"a"}) {
			t.Fatalf("retry: %d subscriptions, %d running, adopting %v", calls, active, b.Adopting())
		}
		b.stop()
	})
}

// A node back under its id waits for its adopter to hand its address
// back, or gives up waiting after within.
func TestAwaitHandBack(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	synctest.Test(t, func(t *testing.T) {
		r := correlation.NewMemoryRouter(correlation.NewMemoryStore(correlation.MemoryStoreConfig{}))
		ctx := t.Context()
		// Not adopted: no wait at all.
		start := time.Now()
		gateway.AwaitHandBack(ctx, r, "a", 3*time.Second, log)
		if d := time.Since(start); d != 0 {
			t.Errorf("AwaitHandBack of an address nobody adopted waited %v", d)
		}

		register(t, r, "a", "b")
		sub := newSubscriber()
		b := startAdopter(t, r, "b", sub, time.Hour)
		rounds(1)
		if adoptedBy(t, r, "a") != "b" {
			t.Fatal("b did not adopt a")
		}
		lease, err := r.Join(ctx, "a", time.Second, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer lease.Close()
		start = time.Now()
		gateway.AwaitHandBack(ctx, r, "a", 3*time.Second, log)
		// b's next round is 1s away; AwaitHandBack looks every 50ms.
		if d := time.Since(start); d < time.Second || d > 1100*time.Millisecond {
			t.Errorf("AwaitHandBack returned after %v, want b's next round (1s)", d)
		}
		if _, active := sub.subscribed("reply.a"); active != 0 {
			t.Error("AwaitHandBack returned while b still consumed a's address")
		}
		b.stop()

		// An adopter that never lets go: consume anyway after within.
		if ok, err := r.Adopt(ctx, "a", "x", time.Hour); err != nil || !ok {
			t.Fatalf("Adopt: %v %v", ok, err)
		}
		start = time.Now()
		gateway.AwaitHandBack(ctx, r, "a", 3*time.Second, log)
		if d := time.Since(start); d < 3*time.Second || d > 3100*time.Millisecond {
			t.Errorf("AwaitHandBack with a stuck adopter returned after %v, want 3s", d)
		}
	})
}
