package nats_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/nats"
)

// In jetstream mode a reply (a subject under the reply prefix) is
// published as a request that the gateway's subscription answers once its
// handler took it: Publish returns nil only then, and fails with
// brokers.ErrUnavailable when nobody subscribes or the handler does not
// take it, so that a service does not acknowledge a request whose reply
// reached nobody. A reply published plainly (a service in another
// language) still reaches the handler.
func TestJetStreamReplyConfirmed(t *testing.T) {
	cfg := testConfig(t, nats.ModeJetStream)
	cfg.MaxDeliveries = 1
	gw, svc := dial(t, cfg), dial(t, cfg)
	inbox := cfg.ReplyPrefix + "node-1"
	publish := func(body string, within time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		return svc.Publish(ctx, inbox, brokers.Message{Body: []byte(body)})
	}

	if err := publish("early", 5*time.Second); !errors.Is(err, brokers.ErrUnavailable) {
		t.Fatalf("reply before the gateway subscribes: %v, want brokers.ErrUnavailable", err)
	}

	var taken atomic.Int32
	got := make(chan string, 4)
	subscribe(t, gw, inbox, func(_ context.Context, m brokers.Message) error {
		if string(m.Body) == "refused" {
			return errors.New("cannot take it")
		}
		taken.Add(1)
		got <- string(m.Body)
		return nil
	}, brokers.AsInbox())

	if err := publish("ok", 5*time.Second); err != nil {
		t.Fatalf("reply to a subscribed gateway: %v", err)
	}
	if taken.Load() != 1 {
		t.Fatalf("Publish returned before the handler took the reply")
	}
	if b := <-got; b != "ok" {
		t.Fatalf("handler got %q", b)
	}
	if err := publish("refused", time.Second); !errors.Is(err, brokers.ErrUnavailable) {
		t.Errorf("reply the handler refused: %v, want brokers.ErrUnavailable", err)
	}

	// A service in another language publishes plainly, no reply subject.
	nc, err := natsgo.Connect(cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish(inbox, []byte("plain")); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if b != "plain" {
			t.Errorf("handler got %q, want plain", b)
		}
	case <-time.After(5 * time.Second):
		t.Error("a plain publish did not reach the handler")
	}
}
