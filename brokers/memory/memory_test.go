package memory_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/brokertest"
	"github.com/syncgate/syncgate/brokers/memory"
)

func TestConformance(t *testing.T) {
	brokertest.Run(t, setup(memory.Config{RetryDelay: time.Millisecond}), brokertest.Features{MaxDeliveries: memory.DefaultMaxDeliveries})
}

// The conformance suite again, with the smallest queue: every Publish past
// the first message waits for a consumer.
func TestConformanceQueueSize1(t *testing.T) {
	brokertest.Run(t, setup(memory.Config{QueueSize: 1, RetryDelay: time.Millisecond}), brokertest.Features{MaxDeliveries: memory.DefaultMaxDeliveries})
}

// setup returns one broker per (sub)test: the connections of a subtest must
// reach the same broker, as they would reach the same server over a network.
func setup(cfg memory.Config) brokertest.Setup {
	var (
		mu  sync.Mutex
		byT = make(map[*testing.T]*memory.Broker)
	)
	return func(t *testing.T) (brokers.Publisher, brokers.Subscriber) {
		mu.Lock()
		defer mu.Unlock()
		b, ok := byT[t]
		if !ok {
			b = memory.New(cfg)
			byT[t] = b
			t.Cleanup(func() {
				mu.Lock()
				delete(byT, t)
				mu.Unlock()
			})
		}
		return b, b
	}
}

const timeout = 10 * time.Second

func newBroker(t *testing.T, cfg memory.Config) *memory.Broker {
	t.Helper()
	b := memory.New(cfg)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// subscribe runs Subscribe in the background until the test ends and
// returns once it is ready.
func subscribe(t *testing.T, b *memory.Broker, source string, h brokers.Handler, opts ...brokers.SubscribeOption) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- b.Subscribe(ctx, source, h, append(opts, brokers.WithReady(func() { close(ready) }))...)
	}()
	var (
		once sync.Once
		err  error
	)
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(timeout):
				err = errors.New("Subscribe did not return")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Subscribe: %v", err)
	case <-time.After(timeout):
		t.Fatal("Subscribe not ready")
	}
	return stop
}

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

func recv(t *testing.T, ch <-chan brokers.Message) brokers.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(timeout):
		t.Fatal("no delivery")
		return brokers.Message{}
	}
}

func publish(t *testing.T, b *memory.Broker, dest string, key, body string) {
	t.Helper()
	if err := b.Publish(t.Context(), dest, brokers.Message{Key: key, Body: []byte(body)}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

func TestBacklogBeforeFirstSubscriber(t *testing.T) {
	b := newBroker(t, memory.Config{})
	for i := range 3 {
		publish(t, b, "orders", "k", fmt.Sprint(i))
	}
	got := make(chan brokers.Message, 3)
	subscribe(t, b, "orders", collect(got), brokers.WithGroup("service"))
	for i := range 3 {
		if m := recv(t, got); string(m.Body) != fmt.Sprint(i) {
			t.Fatalf("got %q, want %d", m.Body, i)
		}
	}
}

func TestGroupsEachGetEveryMessage(t *testing.T) {
	b := newBroker(t, memory.Config{})
	a, c := make(chan brokers.Message, 4), make(chan brokers.Message, 4)
	subscribe(t, b, "events", collect(a), brokers.WithGroup("a"))
	subscribe(t, b, "events", collect(c), brokers.WithGroup("c"))
	publish(t, b, "events", "k", "one")
	publish(t, b, "events", "k", "two")
	for _, ch := range []chan brokers.Message{a, c} {
		if m := recv(t, ch); string(m.Body) != "one" {
			t.Fatalf("got %q, want one", m.Body)
		}
		if m := recv(t, ch); string(m.Body) != "two" {
			t.Fatalf("got %q, want two", m.Body)
		}
	}
}

func TestPublishBlocksWhileQueueFull(t *testing.T) {
	b := newBroker(t, memory.Config{QueueSize: 2})
	publish(t, b, "q", "", "1")
	publish(t, b, "q", "", "2")

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	err := b.Publish(ctx, "q", brokers.Message{Body: []byte("3")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish to a full queue: %v, want context.DeadlineExceeded", err)
	}

	// A blocked Publish completes once a consumer makes room.
	published := make(chan error, 1)
	go func() { published <- b.Publish(t.Context(), "q", brokers.Message{Body: []byte("3")}) }()
	got := make(chan brokers.Message, 3)
	subscribe(t, b, "q", collect(got))
	for _, want := range []string{"1", "2", "3"} {
		if m := recv(t, got); string(m.Body) != want {
			t.Fatalf("got %q, want %s", m.Body, want)
		}
	}
	if err := <-published; err != nil {
		t.Fatalf("blocked Publish: %v", err)
	}
}

func TestCloseUnblocksPublish(t *testing.T) {
	b := memory.New(memory.Config{QueueSize: 1})
	publish(t, b, "q", "", "1")
	published := make(chan error, 1)
	go func() { published <- b.Publish(t.Context(), "q", brokers.Message{Body: []byte("2")}) }()
	_ = b.Close()
	select {
	case err := <-published:
		// The Publish may have been blocked or may start after Close.
		if !errors.Is(err, brokers.ErrClosed) {
			t.Fatalf("Publish: %v, want brokers.ErrClosed", err)
		}
	case <-time.After(timeout):
		t.Fatal("Close did not unblock Publish")
	}
}

func TestEmptyNames(t *testing.T) {
	b := newBroker(t, memory.Config{})
	if err := b.Publish(t.Context(), "", brokers.Message{}); !errors.Is(err, brokers.ErrUnroutable) {
		t.Fatalf("Publish to empty destination: %v, want ErrUnroutable", err)
	}
	h := func(context.Context, brokers.Message) error { return nil }
	if err := b.Subscribe(t.Context(), "", h); !errors.Is(err, brokers.ErrUnroutable) {
		t.Fatalf("Subscribe to empty source: %v, want ErrUnroutable", err)
	}
	if err := b.Subscribe(t.Context(), "q", nil); !errors.Is(err, memory.ErrNoHandler) {
		t.Fatalf("Subscribe with nil handler: %v, want ErrNoHandler", err)
	}
}

// With several workers, messages of one key still arrive in order, also
// when some attempts fail, while other keys proceed.
func TestOrderPerKeyWithConcurrency(t *testing.T) {
	const keys, perKey = 8, 100
	b := newBroker(t, memory.Config{RetryDelay: time.Millisecond})
	got := make(chan brokers.Message, keys*perKey)
	var mu sync.Mutex
	failed := make(map[string]bool)
	subscribe(t, b, "q", func(ctx context.Context, m brokers.Message) error {
		id := m.Key + "/" + string(m.Body)
		mu.Lock()
		fail := !failed[id] && len(m.Body) > 0 && m.Body[len(m.Body)-1] == '7'
		failed[id] = true
		mu.Unlock()
		if fail {
			return errors.New("injected")
		}
		return collect(got)(ctx, m)
	}, brokers.WithConcurrency(4))
	for i := range keys * perKey {
		publish(t, b, "q", fmt.Sprint("k", i%keys), fmt.Sprint(i/keys))
	}
	next := make(map[string]int)
	for range keys * perKey {
		m := recv(t, got)
		if want := fmt.Sprint(next[m.Key]); string(m.Body) != want {
			t.Fatalf("key %s: got %s, want %s", m.Key, m.Body, want)
		}
		next[m.Key]++
	}
}

// A subscription with several workers that stops gives back the message it
// held and everything parked behind it, in order, to the next subscriber.
func TestStoppedSubscriptionGivesBackInOrder(t *testing.T) {
	const n = 10
	b := newBroker(t, memory.Config{})
	holding := make(chan struct{})
	var once sync.Once
	stop := subscribe(t, b, "q", func(ctx context.Context, m brokers.Message) error {
		once.Do(func() { close(holding) })
		<-ctx.Done()
		return ctx.Err()
	}, brokers.WithConcurrency(4), brokers.WithGroup("g"))
	for i := range n {
		publish(t, b, "q", "k", fmt.Sprint(i))
	}
	<-holding
	if err := stop(); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	got := make(chan brokers.Message, n)
	subscribe(t, b, "q", collect(got), brokers.WithGroup("g"))
	for i := range n {
		if m := recv(t, got); string(m.Body) != fmt.Sprint(i) {
			t.Fatalf("got %s, want %d", m.Body, i)
		}
	}
}

func TestSubscribeAfterCloseReturnsErrClosed(t *testing.T) {
	b := memory.New(memory.Config{})
	_ = b.Close()
	err := b.Subscribe(t.Context(), "q", func(context.Context, brokers.Message) error { return nil })
	if !errors.Is(err, brokers.ErrClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
}
