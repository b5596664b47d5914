package rabbitmq_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/rabbitmq"
	"github.com/syncgate/syncgate/brokers/rabbitmq/rabbitmqtest"
	"github.com/syncgate/syncgate/internal/testenv"
)

// The tests need the RabbitMQ server at SYNCGATE_RABBITMQ_URL (default
// amqp://guest:guest@127.0.0.1:5672/) and, for the outage tests, rabbitmqctl
// on PATH talking to that node.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testenv does not import this package (an in-package test of it that
// used testenv would then be an import cycle), so it repeats the default
// URL; this keeps the two equal.
func TestTestenvDefaultURL(t *testing.T) {
	if testenv.DefaultRabbitMQURL != rabbitmq.DefaultURL {
		t.Errorf("testenv.DefaultRabbitMQURL = %q, rabbitmq.DefaultURL = %q", testenv.DefaultRabbitMQURL, rabbitmq.DefaultURL)
	}
}

func unique(prefix string) string { return rabbitmqtest.Unique(prefix) }

// testConfig returns a configuration whose names are unique to the test and
// whose dead-letter topology is deleted when it ends.
func testConfig(t testing.TB) rabbitmq.Config {
	t.Helper()
	// Held for the test: the node's end-to-end tests in another package
	// stop the server (rabbitmqtest.StopBroker) only while no test here runs.
	rabbitmqtest.Shared(t)
	testenv.RequireRabbitMQ(t)
	id := unique("sgtest")
	cfg := rabbitmq.Config{
		URL:                testenv.RabbitMQURL(),
		ConnectionName:     id,
		DeadLetterExchange: id + ".dlx",
		DeadLetterQueue:    id + ".dlq",
		ReconnectInterval:  200 * time.Millisecond,
		Heartbeat:          5 * time.Second,
	}
	a := newAdmin(t)
	t.Cleanup(func() {
		a.deleteQueue(cfg.DeadLetterQueue)
		a.deleteExchange(cfg.DeadLetterExchange)
	})
	return cfg
}

func dial(t testing.TB, cfg rabbitmq.Config) *rabbitmq.Client {
	t.Helper()
	c, err := rabbitmq.Dial(cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// admin is a plain amqp091-go connection for inspecting and cleaning up.
type admin struct {
	t    testing.TB
	mu   sync.Mutex
	conn *amqp.Connection
}

func newAdmin(t testing.TB) *admin {
	t.Helper()
	a := &admin{t: t}
	t.Cleanup(func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.conn != nil {
			_ = a.conn.Close()
		}
	})
	return a
}

// do runs f on a fresh channel, reconnecting when an outage test closed the
// previous connection.
func (a *admin) do(f func(ch *amqp.Channel) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn == nil || a.conn.IsClosed() {
		conn, err := amqp.Dial(testenv.RabbitMQURL())
		if err != nil {
			return err
		}
		a.conn = conn
	}
	ch, err := a.conn.Channel()
	if err != nil {
		return err
	}
	defer func() { _ = ch.Close() }()
	return f(ch)
}

func (a *admin) deleteQueue(name string) {
	_ = a.do(func(ch *amqp.Channel) error { _, err := ch.QueueDelete(name, false, false, false); return err })
}

func (a *admin) deleteExchange(name string) {
	_ = a.do(func(ch *amqp.Channel) error { return ch.ExchangeDelete(name, false, false) })
}

// messages returns the number of ready messages in queue, -1 if it does not
// exist.
func (a *admin) messages(queue string) int {
	n := -1
	_ = a.do(func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err == nil {
			n = q.Messages
		}
		return err
	})
	return n
}

// get fetches one message from queue with auto-ack.
func (a *admin) get(queue string) (amqp.Delivery, bool) {
	var d amqp.Delivery
	var ok bool
	_ = a.do(func(ch *amqp.Channel) error {
		var err error
		d, ok, err = ch.Get(queue, true)
		return err
	})
	return d, ok
}

// cleanupQueue deletes queue when the test ends.
func cleanupQueue(t testing.TB, queue string) { rabbitmqtest.DeleteQueueAtEnd(t, queue) }

// subscribe runs Subscribe in the background until the test ends and waits
// for its Ready callback.
func subscribe(t testing.TB, s brokers.Subscriber, source string, h brokers.Handler, opts ...brokers.SubscribeOption) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	opts = append(opts, brokers.WithReady(func() { close(ready) }))
	go func() { done <- s.Subscribe(ctx, source, h, opts...) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Subscribe(%s) returned %v", source, err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Subscribe(%s) did not return 20s after its context ended", source)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Subscribe(%s) returned before ready: %v", source, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("Subscribe(%s) not ready within 20s", source)
	}
}

// The admin tool's helpers are shared with the node's end-to-end tests.

func requireRabbitmqctl(t testing.TB) {
	t.Helper()
	rabbitmqtest.RequireRabbitmqctl(t)
}

func closeConnections(t testing.TB, prefix string) int {
	t.Helper()
	return rabbitmqtest.CloseConnections(t, prefix)
}

func stopBroker(t testing.TB) (start func()) {
	t.Helper()
	return rabbitmqtest.StopBroker(t)
}

func isUnavailable(err error) bool { return errors.Is(err, brokers.ErrUnavailable) }
