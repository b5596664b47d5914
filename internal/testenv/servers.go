package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// RedisAddr is the shared Redis server the integration tests use.
const RedisAddr = "127.0.0.1:6379"

// DefaultRabbitMQURL is the shared RabbitMQ server the integration tests use
// unless SYNCGATE_RABBITMQ_URL names another.
const DefaultRabbitMQURL = "amqp://guest:guest@127.0.0.1:5672/"

// Unavailable stops a test that lacks something it needs (a server, a
// tool): under CI=true it fails, elsewhere it is skipped. The message
// names what is missing.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true)", args...)
	}
	t.Skipf(format, args...)
}

// skipShort skips a test that needs a server under -short: make check runs
// only the tests that need none (make test, what CI runs, has no -short).
func skipShort(t testing.TB, server string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("this test needs %s; -short (make check) runs only the tests that need no server, make test runs it", server)
	}
}

// RequireRedis returns RedisAddr once the server there answers PING;
// otherwise the test fails under CI=true and is skipped elsewhere.
func RequireRedis(t testing.TB) string {
	t.Helper()
	skipShort(t, "Redis")
	if err := pingRedis(RedisAddr); err != nil {
		Unavailable(t, "this test needs Redis at %s: %v", RedisAddr, err)
	}
	return RedisAddr
}

func pingRedis(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(3 * time.Second)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimSpace(line); line != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// RabbitMQURL is the RabbitMQ server the tests use: SYNCGATE_RABBITMQ_URL,
// or DefaultRabbitMQURL.
func RabbitMQURL() string {
	if u := os.Getenv("SYNCGATE_RABBITMQ_URL"); u != "" {
		return u
	}
	return DefaultRabbitMQURL
}

// RequireRabbitMQ returns RabbitMQURL once a connection to it opens (the
// AMQP handshake and login included); otherwise the test fails under
// CI=true and is skipped elsewhere.
func RequireRabbitMQ(t testing.TB) string {
	t.Helper()
	skipShort(t, "RabbitMQ")
	u := RabbitMQURL()
	conn, err := amqp.DialConfig(u, amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)})
	if err != nil {
		Unavailable(t, "this test needs RabbitMQ at %s (start it with `rabbitmq-server -detached`): %v", u, err)
	}
	_ = conn.Close()
	return u
}

// DefaultPostgresURL is the PostgreSQL server the tests use by default:
// the machine's, trust auth, database test.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// PostgresURL is SYNCGATE_POSTGRES_URL, or DefaultPostgresURL.
func PostgresURL() string {
	if u := os.Getenv("SYNCGATE_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// RequirePostgres returns PostgresURL once its port accepts a
// connection; otherwise the test fails under CI=true and is skipped
// elsewhere.
func RequirePostgres(t testing.TB) string {
	t.Helper()
	skipShort(t, "PostgreSQL")
	c, err := net.DialTimeout("tcp", "127.0.0.1:5432", 3*time.Second)
	if err != nil {
		Unavailable(t, "this test needs PostgreSQL at 127.0.0.1:5432 (start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`): %v", err)
	}
	_ = c.Close()
	return PostgresURL()
}
