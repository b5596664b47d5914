package kafka

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/syncgate/syncgate/brokers"
)

// startInbox runs an inbox Subscribe on topic in the background; ready is
// closed on Ready, done receives Subscribe's result.
func startInbox(t *testing.T, sub *Subscriber, topic string, h brokers.Handler) (ready chan struct{}, done chan error, cancel context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready, done = make(chan struct{}), make(chan error, 1)
	go func() {
		done <- sub.Subscribe(ctx, topic, h, brokers.AsInbox(), brokers.WithReady(func() { close(ready) }))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(testTimeout):
			t.Errorf("inbox Subscribe did not return within %v of its end", testTimeout)
		}
	})
	return ready, done, cancel
}

// TestInboxInUse: a second process (another client) subscribing to a reply
// topic a live inbox consumes is refused with ErrInUse within 15s, without
// ever being Ready, while the first keeps receiving; once the first stops,
// a new one starts at once.
func TestInboxInUse(t *testing.T) {
	c := newCluster(t)
	cfg := c.config()
	topic := "syncgate.reply.same-" + uuid.NewString()
	pub := c.publisher(t, cfg)

	got := make(chan string, 8)
	first := c.subscriber(t, cfg)
	s1 := subscribe(t, first, topic, collectIDs(got), brokers.AsInbox())

	start := time.Now()
	ready2, done2, _ := startInbox(t, c.subscriber(t, cfg), topic, collectIDs(got))
	select {
	case err := <-done2:
		if !errors.Is(err, brokers.ErrInUse) {
			t.Fatalf("second inbox Subscribe returned %v, want ErrInUse", err)
		}
		t.Logf("second inbox refused after %v: %v", time.Since(start).Round(time.Millisecond), err)
		done2 <- err
	case <-ready2:
		t.Fatal("second inbox on one reply topic became Ready")
	case <-time.After(15 * time.Second):
		t.Fatal("second inbox on one reply topic not refused within 15s")
	}

	id, m := reply(t, "to the first")
	if err := pub.Publish(publishCtx(t), topic, m); err != nil {
		t.Fatal(err)
	}
	if g := recv(t, got, "reply to the first inbox"); g != id {
		t.Fatalf("got %s, want %s", g, id)
	}
	if !first.Ready() {
		t.Error("the first inbox is not Ready after the refused second")
	}

	s1.stop(t)
	_ = first.Close()
	start = time.Now()
	third := c.subscriber(t, cfg)
	subscribe(t, third, topic, collectIDs(got), brokers.AsInbox())
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a successor took %v to start after the first stopped cleanly", took)
	}
	id, m = reply(t, "to the successor")
	if err := pub.Publish(publishCtx(t), topic, m); err != nil {
		t.Fatal(err)
	}
	if g := recv(t, got, "reply to the successor"); g != id {
		t.Fatalf("got %s, want %s", g, id)
	}
}

// TestInboxInUseSimultaneousStart: two inboxes started at the same moment
// on one new reply topic: exactly one becomes Ready, the other is refused.
func TestInboxInUseSimultaneousStart(t *testing.T) {
	c := newCluster(t)
	cfg := c.config()
	for round := range 3 {
		topic := "syncgate.reply.race-" + uuid.NewString()
		h := func(context.Context, brokers.Message) error { return nil }
		r1, d1, _ := startInbox(t, c.subscriber(t, cfg), topic, h)
		r2, d2, _ := startInbox(t, c.subscriber(t, cfg), topic, h)
		var readies, refusals int
		deadline := time.After(15 * time.Second)
		for readies+refusals < 2 {
			select {
			case <-r1:
				readies, r1 = readies+1, nil
			case <-r2:
				readies, r2 = readies+1, nil
			case err := <-d1:
				d1 <- err // for the cleanup
				if !errors.Is(err, brokers.ErrInUse) {
					t.Fatalf("round %d: Subscribe returned %v", round, err)
				}
				refusals, d1 = refusals+1, nil
			case err := <-d2:
				d2 <- err // for the cleanup
				if !errors.Is(err, brokers.ErrInUse) {
					t.Fatalf("round %d: Subscribe returned %v", round, err)
				}
				refusals, d2 = refusals+1, nil
			case <-deadline:
				t.Fatalf("round %d: after 15s %d ready and %d refused, want 1 and 1", round, readies, refusals)
			}
		}
		if readies != 1 || refusals != 1 {
			t.Fatalf("round %d: %d ready and %d refused, want 1 and 1", round, readies, refusals)
		}
	}
}
