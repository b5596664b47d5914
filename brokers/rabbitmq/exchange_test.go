package rabbitmq_test

import (
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/rabbitmq"
)

// A destination /exchanges/EXCHANGE/KEY publishes to an exchange the
// operator declared, with that routing key: a topic exchange routes it to
// the queue bound for the pattern. A missing exchange, or a key no queue
// is bound for, is ErrUnroutable, and neither breaks the channel for the
// publishes that follow.
func TestPublishToExchange(t *testing.T) {
	cfg := testConfig(t)
	c := dial(t, cfg)
	a := newAdmin(t)
	exchange, queue := unique("sgtest.topic"), unique("sgtest.eu")
	t.Cleanup(func() { a.deleteExchange(exchange) })
	cleanupQueue(t, queue)
	if err := a.do(func(ch *amqp.Channel) error {
		if err := ch.ExchangeDeclare(exchange, "topic", false, true, false, false, nil); err != nil {
			return err
		}
		if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
			return err
		}
		return ch.QueueBind(queue, "orders.eu.*", exchange, false, nil)
	}); err != nil {
		t.Fatal(err)
	}

	if err := c.Publish(t.Context(), rabbitmq.ExchangeAddress(exchange, "orders.eu.42"), request("r", 30*time.Second)); err != nil {
		t.Fatalf("Publish to the exchange: %v", err)
	}
	if n := a.messages(queue); n != 1 {
		t.Fatalf("the bound queue holds %d messages, want 1", n)
	}
	if err := c.Publish(t.Context(), rabbitmq.ExchangeAddress(exchange, "orders.us.42"), request("r", 30*time.Second)); !errors.Is(err, brokers.ErrUnroutable) {
		t.Fatalf("Publish with a key nobody is bound for = %v, want ErrUnroutable", err)
	}
	for range 2 { // checked each time: it may be declared later
		if err := c.Publish(t.Context(), rabbitmq.ExchangeAddress(unique("sgtest.none"), "k"), request("r", 30*time.Second)); !errors.Is(err, brokers.ErrUnroutable) {
			t.Fatalf("Publish to a missing exchange = %v, want ErrUnroutable", err)
		}
	}
	for _, bad := range []string{"/exchanges/", "/exchanges/x", "/exchanges//k", "/exchanges/%zz/k"} {
		if err := c.Publish(t.Context(), bad, request("r", 30*time.Second)); err == nil {
			t.Errorf("Publish to %q succeeded", bad)
		}
	}
	// The shared channel survived: a publish to the exchange still works,
	// and to a routing key with a slash, percent-encoded.
	if err := c.Publish(t.Context(), rabbitmq.ExchangeAddress(exchange, "orders.eu.43"), request("r", 30*time.Second)); err != nil {
		t.Fatalf("Publish after the refusals: %v", err)
	}
	if n := a.messages(queue); n != 2 {
		t.Fatalf("the bound queue holds %d messages, want 2", n)
	}
	if got, want := rabbitmq.ExchangeAddress("a/b", "c/d e"), "/exchanges/a%2Fb/c%2Fd%20e"; got != want {
		t.Errorf("ExchangeAddress = %q, want %q", got, want)
	}
}
