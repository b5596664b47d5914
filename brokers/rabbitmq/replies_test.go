package rabbitmq_test

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/internal/testenv"
)

// TestTransientReplies checks the delivery mode of what Publish sends:
// persistent, except replies with Config.TransientReplies and every other
// message with Config.TransientRequests.
func TestTransientReplies(t *testing.T) {
	reply := envelope.Reply{CorrelationID: "0190a9b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b", Body: []byte("ok")}.Message()
	req := request("syncgate.reply.node1", 30*time.Second)
	plain := brokers.Message{Body: []byte("x")}
	a := newAdmin(t)
	for _, tc := range []struct {
		name              string
		replies, requests bool
		m                 brokers.Message
		want              uint8
	}{
		{"reply, default", false, false, reply, amqp.Persistent},
		{"reply, transient_replies", true, false, reply, amqp.Transient},
		{"request, transient_replies", true, false, req, amqp.Persistent},
		{"plain message, transient_replies", true, false, plain, amqp.Persistent},
		{"request, default", false, false, req, amqp.Persistent},
		{"request, transient_requests", false, true, req, amqp.Transient},
		{"plain message, transient_requests", false, true, plain, amqp.Transient},
		{"reply, transient_requests", false, true, reply, amqp.Persistent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.TransientReplies, cfg.TransientRequests = tc.replies, tc.requests
			c := dial(t, cfg)
			q := unique("sgtest.mode")
			cleanupQueue(t, q)
			if err := a.do(func(ch *amqp.Channel) error { _, err := ch.QueueDeclare(q, true, false, false, false, nil); return err }); err != nil {
				t.Fatal(err)
			}
			if err := c.Publish(t.Context(), q, tc.m); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			d, ok := a.get(q)
			if !ok {
				t.Fatal("message not in the queue after Publish returned")
			}
			if d.DeliveryMode != tc.want {
				t.Fatalf("delivery mode %d, want %d", d.DeliveryMode, tc.want)
			}
		})
	}
}

// TestRepliesAcrossBrokerRestart: a reply waiting in a node's reply queue
// survives a broker restart when published persistent (the default) and is
// lost with TransientReplies, the trade-off Config.TransientReplies
// documents.
func TestRepliesAcrossBrokerRestart(t *testing.T) {
	requireRabbitmqctl(t)
	a := newAdmin(t)
	inboxes := map[bool]string{}
	for _, transient := range []bool{false, true} {
		cfg := testConfig(t)
		cfg.TransientReplies = transient
		c := dial(t, cfg)
		inbox := unique("syncgate.reply")
		cleanupQueue(t, inbox)
		inboxes[transient] = inbox
		// Declare the reply queue as a node does, then leave it without a
		// consumer, as during the node's outage.
		ctx, cancel := context.WithCancel(t.Context())
		ready, done := make(chan struct{}), make(chan error, 1)
		go func() {
			done <- c.Subscribe(ctx, inbox, func(context.Context, brokers.Message) error { return nil },
				brokers.AsInbox(), brokers.WithReady(func() { close(ready) }))
		}()
		<-ready
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		reply := envelope.Reply{CorrelationID: "0190a9b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b", Body: []byte("ok")}
		if err := c.Publish(t.Context(), inbox, reply.Message()); err != nil {
			t.Fatal(err)
		}
	}
	start := stopBroker(t)
	start()
	want := map[bool]int{false: 1, true: 0}
	for transient, inbox := range inboxes {
		var n int
		testenv.Eventually(t, 10*time.Second, "reply queue readable after the restart", func() bool {
			n = a.messages(inbox)
			return n >= 0
		})
		if n != want[transient] {
			t.Errorf("transient_replies %v: %d replies in the reply queue after the restart, want %d", transient, n, want[transient])
		}
	}
}
