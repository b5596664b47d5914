package rabbitmq_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/internal/testenv"
)

// expectInUse subscribes c to inbox as a reply inbox and expects it to be
// refused with brokers.ErrInUse within 15s, never ready.
func expectInUse(t *testing.T, c brokers.Subscriber, inbox string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err := c.Subscribe(ctx, inbox, func(context.Context, brokers.Message) error {
		t.Error("a refused inbox subscription got a message")
		return nil
	}, brokers.AsInbox(), brokers.WithReady(func() { t.Error("a refused inbox subscription became ready") }))
	took := time.Since(start)
	if !errors.Is(err, brokers.ErrInUse) {
		t.Fatalf("second inbox Subscribe = %v after %s, want ErrInUse", err, took)
	}
	if took > 15*time.Second {
		t.Errorf("ErrInUse after %s, want well within 15s", took)
	}
	t.Logf("refused after %s: %v", took, err)
}

// receives publishes a reply to inbox and waits for it in got.
func receives(t *testing.T, p brokers.Publisher, inbox string, got <-chan string) {
	t.Helper()
	id := uuid.NewString()
	if err := p.Publish(t.Context(), inbox, envelope.Reply{CorrelationID: id}.Message()); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case g := <-got:
			if g == id {
				return
			}
		case <-timeout:
			t.Fatalf("reply %s not received by the first inbox subscriber within 10s", id)
		}
	}
}

// TestInboxInUse (issue 13, point 3): two processes with one node id share
// a reply queue; the second one's inbox Subscribe is refused with
// ErrInUse (the first consumes the queue exclusively) instead of taking
// half of the first one's replies, which keeps receiving all of them, also
// after its connection dropped and recovered.
func TestInboxInUse(t *testing.T) {
	requireRabbitmqctl(t)
	cfg := testConfig(t)
	firstCfg, secondCfg := cfg, cfg
	firstCfg.ConnectionName += "-first"
	secondCfg.ConnectionName += "-second"
	first, second := dial(t, firstCfg), dial(t, secondCfg)
	inbox := unique("syncgate.reply")
	cleanupQueue(t, inbox)
	got := make(chan string, 16)
	subscribe(t, first, inbox, func(_ context.Context, m brokers.Message) error {
		got <- m.Headers[envelope.CorrelationID]
		return nil
	}, brokers.AsInbox())

	expectInUse(t, second, inbox)
	receives(t, second, inbox, got)

	// The exclusive consumer dies with its connection; the recovered
	// subscription takes the queue again, exclusively.
	if n := closeConnections(t, firstCfg.ConnectionName+" subscriber"); n != 1 {
		t.Fatalf("closed %d subscriber connections, want 1", n)
	}
	testenv.Eventually(t, 15*time.Second, "the first subscriber consuming again", first.Ready)
	receives(t, second, inbox, got)
	expectInUse(t, second, inbox)
}
