package kafka

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
)

// TestGroupReadsFromFirstOffset: a group that never committed starts at the
// beginning, so a request published before any service instance joined is
// handled.
func TestGroupReadsFromFirstOffset(t *testing.T) {
	c := newCluster(t)
	cfg := c.config()
	topic := c.topic(t, "svc.early", 4)
	if err := c.publisher(t, cfg).Publish(publishCtx(t), topic, brokers.Message{Key: "early", Body: []byte("before the group existed")}); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	subscribe(t, c.subscriber(t, cfg), topic, func(ctx context.Context, m brokers.Message) error {
		got <- m.Key
		return nil
	})
	if k := recv(t, got, "early request"); k != "early" {
		t.Fatalf("got %q", k)
	}
}

// TestGroupConcurrencyKeepsKeyOrder: with WithConcurrency(4) records are
// handled in parallel, across partitions and within one, while each key's
// records stay in order.
func TestGroupConcurrencyKeepsKeyOrder(t *testing.T) {
	c := newCluster(t)
	for _, partitions := range []int{1, 4} {
		t.Run(fmt.Sprintf("partitions=%d", partitions), func(t *testing.T) {
			testConcurrencyKeepsKeyOrder(t, c, partitions)
		})
	}
}

func testConcurrencyKeepsKeyOrder(t *testing.T, c *testCluster, partitions int) {
	const keys, perKey = 16, 20
	cfg := c.config()
	topic := c.topic(t, "svc.order", partitions)

	var running, peak atomic.Int32
	parallel := make(chan struct{})
	var once sync.Once
	type rec struct {
		key string
		seq int
	}
	got := make(chan rec, keys*perKey)
	subscribe(t, c.subscriber(t, cfg), topic, func(ctx context.Context, m brokers.Message) error {
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		if n >= 2 {
			once.Do(func() { close(parallel) })
		}
		select { // hold each handler until two ran at once
		case <-parallel:
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(testTimeout):
		}
		seq, _ := strconv.Atoi(string(m.Body))
		got <- rec{m.Key, seq}
		return nil
	}, brokers.WithConcurrency(4))

	pub := c.publisher(t, cfg)
	var wg sync.WaitGroup
	errs := make(chan error, keys)
	for k := range keys {
		wg.Go(func() { // one publisher per key: its order is the key's order
			for i := range perKey {
				if err := pub.Publish(publishCtx(t), topic, brokers.Message{Key: fmt.Sprintf("key-%d", k), Body: []byte(strconv.Itoa(i))}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	next := map[string]int{}
	for range keys * perKey {
		r := recv(t, got, "delivery")
		if r.seq != next[r.key] {
			t.Fatalf("%s: got record %d, want %d", r.key, r.seq, next[r.key])
		}
		next[r.key]++
	}
	if p := peak.Load(); p < 2 || p > 4 {
		t.Fatalf("peak concurrency %d, want 2..4", p)
	}
}

// TestGroupHandlerErrorDoesNotCommitPastIt: with max_deliveries -1 (never
// dead-letter) a record whose handler keeps failing blocks its partition
// (order) and is not committed: a new member of the group after the failing
// one stopped receives it first. (TestDeadLetterRecord: the default.)
func TestGroupHandlerErrorDoesNotCommitPastIt(t *testing.T) {
	c := newCluster(t)
	cfg := c.config()
	cfg.MaxDeliveries = -1
	cfg.RetryBackoffMin = time.Millisecond
	cfg.RetryBackoffMax = 10 * time.Millisecond
	topic := c.topic(t, "svc.poison", 1)
	pub := c.publisher(t, cfg)
	for _, b := range []string{"ok-1", "poison", "ok-2"} {
		if err := pub.Publish(publishCtx(t), topic, brokers.Message{Key: "k", Body: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	var attempts atomic.Int32
	seen := make(chan string, 64)
	s := subscribe(t, c.subscriber(t, cfg), topic, func(ctx context.Context, m brokers.Message) error {
		seen <- string(m.Body)
		if string(m.Body) == "poison" && attempts.Add(1) <= 5 {
			return fmt.Errorf("attempt %d fails", attempts.Load())
		}
		if string(m.Body) == "poison" {
			<-ctx.Done() // then the consumer "crashes" while holding it
			return ctx.Err()
		}
		return nil
	}, brokers.WithGroup("poison-group"))
	var order []string
	for len(order) < 7 { // ok-1, then poison 6 times; ok-2 never overtakes it
		order = append(order, recv(t, seen, "delivery"))
	}
	if strings.Join(order, ",") != "ok-1,poison,poison,poison,poison,poison,poison" {
		t.Fatalf("deliveries %v", order)
	}
	s.stop(t)

	got := make(chan string, 4)
	subscribe(t, c.subscriber(t, cfg), topic, func(ctx context.Context, m brokers.Message) error {
		got <- string(m.Body)
		return nil
	}, brokers.WithGroup("poison-group"))
	if b := recv(t, got, "redelivery"); b != "poison" {
		t.Fatalf("new member got %q first, want the uncommitted poison record", b)
	}
	if b := recv(t, got, "next record"); b != "ok-2" {
		t.Fatalf("then %q, want ok-2", b)
	}
}

// TestCommitWaitsForSlowRecord: records of other keys handled after a slow
// one do not move the commit past it: a consumer stopped while still holding
// it leaves it (and what followed) to the next member.
func TestCommitWaitsForSlowRecord(t *testing.T) {
	c := newCluster(t)
	cfg := c.config()
	topic := c.topic(t, "svc.slow", 1)
	pub := c.publisher(t, cfg)
	keys := []string{"slow"}
	for i := range 16 { // some share the slow one's worker and wait; most do not
		keys = append(keys, fmt.Sprintf("fast-%d", i))
	}
	for _, k := range keys {
		if err := pub.Publish(publishCtx(t), topic, brokers.Message{Key: k, Body: []byte(k)}); err != nil {
			t.Fatal(err)
		}
	}
	holding := make(chan struct{})
	fast := make(chan string, len(keys))
	s := subscribe(t, c.subscriber(t, cfg), topic, func(ctx context.Context, m brokers.Message) error {
		if m.Key == "slow" {
			close(holding)
			<-ctx.Done()
			return ctx.Err()
		}
		fast <- m.Key
		return nil
	}, brokers.WithGroup("slow-group"), brokers.WithConcurrency(8))
	recv(t, holding, "slow record")
	recv(t, fast, "record behind the slow one, handled by another worker")
	s.stop(t) // commits what it can: nothing, "slow" is the partition's first record

	got := make(chan string, len(keys))
	subscribe(t, c.subscriber(t, cfg), topic, func(ctx context.Context, m brokers.Message) error {
		got <- m.Key
		return nil
	}, brokers.WithGroup("slow-group"))
	if k := recv(t, got, "redelivery"); k != "slow" {
		t.Fatalf("next member got %q first, want the unfinished slow record", k)
	}
}

func TestTracker(t *testing.T) {
	var tr tracker
	for o := int64(10); o < 15; o++ {
		tr.add(o)
	}
	for _, step := range []struct {
		done  int64
		next  int64
		moved bool
	}{
		{12, 0, false}, {11, 0, false}, {10, 13, true}, {14, 0, false}, {13, 15, true},
	} {
		next, moved := tr.complete(step.done)
		if next != step.next || moved != step.moved {
			t.Fatalf("complete(%d) = %d, %v; want %d, %v", step.done, next, moved, step.next, step.moved)
		}
	}
}
