package kafka

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"

	"github.com/syncgate/syncgate/brokers"
)

// Tests run against an in-process kfake cluster (the Kafka wire protocol,
// no mocks), or against a real cluster when SYNCGATE_KAFKA_BROKERS is set
// (comma-separated host:port). Tests that stop the broker need kfake and
// skip on a real cluster.
const brokersEnv = "SYNCGATE_KAFKA_BROKERS"

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testCluster is the cluster a test talks to.
type testCluster struct {
	brokers []string
	fake    *kfake.Cluster // nil on a real cluster
}

// maxBrokerMessage lets kfake accept the oversized records the garbage test
// produces (broker default: 1 MiB + 12 bytes).
const maxBrokerMessage = 8 << 20

// newCluster returns the real cluster of SYNCGATE_KAFKA_BROKERS or a fresh
// kfake cluster closed when the test ends.
func newCluster(t testing.TB, opts ...kfake.Opt) *testCluster {
	t.Helper()
	if env := os.Getenv(brokersEnv); env != "" {
		return &testCluster{brokers: strings.Split(env, ",")}
	}
	return newFake(t, opts...)
}

// newFake always starts kfake on 127.0.0.1.
func newFake(t testing.TB, opts ...kfake.Opt) *testCluster {
	t.Helper()
	opts = append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": fmt.Sprint(maxBrokerMessage)}),
	}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return &testCluster{brokers: c.ListenAddrs(), fake: c}
}

// config is a Config for tests: quick heartbeats so rebalances take a
// fraction of a second.
func (c *testCluster) config() Config {
	return Config{
		Brokers:           c.brokers,
		HeartbeatInterval: 200 * time.Millisecond,
		SessionTimeout:    6 * time.Second, // kfake's minimum
		JoinGroupBackoff:  200 * time.Millisecond,
		CommitInterval:    200 * time.Millisecond,
		MaxWait:           250 * time.Millisecond,
	}
}

// topic creates a fresh topic with partitions partitions, taking records up
// to maxBrokerMessage.
func (c *testCluster) topic(t testing.TB, prefix string, partitions int) string {
	t.Helper()
	name := fmt.Sprintf("%s.%016x", prefix, rand.Uint64())
	cfg := c.config()
	cfg.MaxMessageBytes = maxBrokerMessage - batchOverhead
	cfg, sec, err := cfg.prepare()
	if err != nil {
		t.Fatal(err)
	}
	a := newAdmin(&cfg, sec, name)
	defer a.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.createTopic(ctx, name, partitions, 0); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	return name
}

func (c *testCluster) publisher(t testing.TB, cfg Config) *Publisher {
	t.Helper()
	cfg.Logger = testLogger()
	p, err := NewPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func (c *testCluster) subscriber(t testing.TB, cfg Config) *Subscriber {
	t.Helper()
	cfg.Logger = testLogger()
	s, err := NewSubscriber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// testLogger discards logs unless SYNCGATE_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("SYNCGATE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// subscription is a Subscribe call running in the background.
type subscription struct {
	cancel context.CancelFunc
	done   chan error // receives Subscribe's result
}

// subscribe runs sub.Subscribe until the test ends and returns once Ready
// was called.
func subscribe(t testing.TB, sub *Subscriber, topic string, h brokers.Handler, opts ...brokers.SubscribeOption) *subscription {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscription{cancel: cancel, done: make(chan error, 1)}
	ready := make(chan struct{})
	var once sync.Once
	userReady := brokers.NewSubscribeConfig(opts...).Ready // runs first
	opts = append(opts, brokers.WithReady(func() {
		userReady()
		once.Do(func() { close(ready) })
	}))
	go func() { s.done <- sub.Subscribe(ctx, topic, h, opts...) }()
	t.Cleanup(func() { s.stop(t) })
	select {
	case <-ready:
	case err := <-s.done:
		s.done <- err
		t.Fatalf("Subscribe(%q) returned %v before Ready", topic, err)
	case <-time.After(testTimeout):
		t.Fatalf("Subscribe(%q): no Ready within %v", topic, testTimeout)
	}
	return s
}

// stop cancels the subscription and waits for Subscribe to return nil.
func (s *subscription) stop(t testing.TB) {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("Subscribe returned %v", err)
		}
		s.done <- nil // later stops see a clean end
	case <-time.After(testTimeout):
		t.Errorf("Subscribe did not return within %v of its context's end", testTimeout)
	}
}

// testTimeout bounds every wait for an expected event.
const testTimeout = 20 * time.Second

// recv returns the next value of ch or fails the test after testTimeout.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("no %s within %v", what, testTimeout)
		panic("unreachable")
	}
}

// publishCtx bounds one Publish in a test.
func publishCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// rawWriter produces records as any Kafka client would, bypassing the
// Publisher (and its envelope discipline).
func (c *testCluster) rawWriter(t testing.TB) *kafkago.Writer {
	t.Helper()
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(c.brokers...),
		Balancer:     kafkago.Murmur2Balancer{},
		BatchTimeout: time.Millisecond,
		BatchBytes:   maxBrokerMessage,
		RequiredAcks: kafkago.RequireOne,
	}
	t.Cleanup(func() {
		_ = w.Close()
		if tr, ok := w.Transport.(*kafkago.Transport); ok {
			tr.CloseIdleConnections()
		}
	})
	w.Transport = &kafkago.Transport{}
	return w
}
