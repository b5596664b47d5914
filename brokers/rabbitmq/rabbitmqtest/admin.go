package rabbitmqtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/internal/testenv"
)

// Unique returns prefix with a random suffix: queue and connection names
// that no other test (or test process) uses.
func Unique(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "." + hex.EncodeToString(b)
}

// Messages returns the number of ready messages in queue, -1 when it does
// not exist or the server cannot be reached.
func Messages(queue string) int {
	n := -1
	_ = withChannel(func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err == nil {
			n = q.Messages
		}
		return err
	})
	return n
}

// DeleteQueueAtEnd deletes queue when t ends.
func DeleteQueueAtEnd(t testing.TB, queue string) {
	t.Cleanup(func() {
		_ = withChannel(func(ch *amqp.Channel) error { _, err := ch.QueueDelete(queue, false, false, false); return err })
	})
}

func withChannel(f func(ch *amqp.Channel) error) error {
	conn, err := amqp.Dial(testenv.RabbitMQURL())
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	return f(ch)
}

// Rabbitmqctl runs the admin tool against the local node.
func Rabbitmqctl(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// RequireRabbitmqctl makes t need the admin tool (testenv.Unavailable).
func RequireRabbitmqctl(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		testenv.Unavailable(t, "rabbitmqctl not found for the RabbitMQ node at %s: %v", testenv.RabbitMQURL(), err)
	}
}

// CloseConnections force-closes the broker connections whose
// connection_name starts with prefix and returns how many it closed.
// (RabbitMQ 3.x close_connection takes the connection's pid;
// list_connections shows it.)
func CloseConnections(t testing.TB, prefix string) int {
	t.Helper()
	out := Rabbitmqctl(t, "-q", "list_connections", "--no-table-headers", "pid", "client_properties")
	n := 0
	for line := range strings.SplitSeq(out, "\n") {
		pid, props, ok := strings.Cut(line, "\t")
		if !ok || !strings.Contains(props, `{"connection_name","`+prefix) {
			continue
		}
		// A connection may already be gone; that is not an error here.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, "rabbitmqctl", "close_connection", pid, "syncgate test").CombinedOutput()
		cancel()
		if err == nil {
			n++
		} else {
			t.Logf("rabbitmqctl close_connection %s: %v: %s", pid, err, out)
		}
	}
	return n
}

// StopBroker stops the RabbitMQ application and returns a function that
// starts it again and waits until it is up; t's cleanup calls it too,
// whatever happened. It holds the server Exclusive meanwhile, so the
// caller must not hold it Shared.
func StopBroker(t testing.TB) (start func()) {
	t.Helper()
	RequireRabbitmqctl(t)
	Exclusive(t)
	var once sync.Once
	start = func() {
		once.Do(func() {
			Rabbitmqctl(t, "start_app")
			Rabbitmqctl(t, "await_startup")
		})
	}
	t.Cleanup(start)
	Rabbitmqctl(t, "stop_app")
	return start
}

// DeleteExchangeAtEnd deletes exchange when t ends.
func DeleteExchangeAtEnd(t testing.TB, exchange string) {
	t.Cleanup(func() {
		_ = withChannel(func(ch *amqp.Channel) error { return ch.ExchangeDelete(exchange, false, false) })
	})
}
