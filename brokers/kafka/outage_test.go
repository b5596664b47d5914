package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/internal/testenv"
)

// restartEmpty closes c's kfake cluster and starts a new, empty one on the
// same port (what Ctrl-C and a second `go run ./cmd/kafka-embedded` do),
// returning it; it is closed when the test ends.
func restartEmpty(t *testing.T, c *testCluster, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	_, port, _ := net.SplitHostPort(c.brokers[0])
	portN, _ := strconv.Atoi(port)
	c.fake.Close()
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.Ports(portN),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(maxBrokerMessage)})}, opts...)
	var (
		c2  *kfake.Cluster
		err error
	)
	// The old listener's port may take a moment to be free again.
	waitUntil(t, 10*time.Second, "kfake restarts on port "+port, func() bool {
		c2, err = kfake.NewCluster(opts...)
		return err == nil
	})
	t.Cleanup(c2.Close)
	return c2
}

// waitUntil is testenv.Eventually that also says how long cond took.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	testenv.Eventually(t, timeout, what, cond)
	return time.Since(start)
}

// TestInboxSurvivesEmptyRestart is the README's Kafka walkthrough with
// kafka-embedded stopped and started again without a data directory: the
// reply topic, its records and the inbox's committed offsets are gone. The
// inbox must notice, recreate its topic, read it from the beginning and
// deliver every reply produced afterwards, without a restart; Ready must be
// false while the broker is away and true again within 5s of its return.
//
// "broker creates topics" is the silent stall of the report: a service's
// reply re-creates the topic first, and the inbox's readers sit at offsets
// the new topic has not reached.
func TestInboxSurvivesEmptyRestart(t *testing.T) {
	if os.Getenv(brokersEnv) != "" {
		t.Skip("stops the broker: kfake only")
	}
	for _, tc := range []struct {
		name       string
		autoCreate bool // broker and publisher create topics on produce
	}{
		{"inbox recreates its topic", false},
		{"broker creates topics", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newFake(t)
			cfg := c.config()
			topic := "syncgate.reply.node-" + uuid.NewString()
			cfg.Logger = testLogger()
			b, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			got := make(chan string, 256)
			subscribe(t, b.Subscriber, topic, collectIDs(got), brokers.AsInbox(), brokers.WithConcurrency(4))
			if !b.Ready() {
				t.Fatal("Ready false once the inbox is positioned")
			}

			pcfg := cfg
			pcfg.AutoCreateTopics = tc.autoCreate
			pub := c.publisher(t, pcfg)
			// Enough replies that every partition's position is well past 0.
			want := map[string]bool{}
			for i := range 40 {
				id, m := reply(t, fmt.Sprint("before ", i))
				if err := pub.Publish(publishCtx(t), topic, m); err != nil {
					t.Fatal(err)
				}
				want[id] = true
			}
			for len(want) > 0 {
				delete(want, recv(t, got, "reply before the restart"))
			}

			var opts []kfake.Opt
			if tc.autoCreate {
				opts = append(opts, kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(4))
			}
			c.fake.Close()
			took := waitUntil(t, 5*time.Second, "Ready false with the broker down", func() bool { return !b.Ready() })
			t.Logf("Ready false %v after the broker stopped", took.Round(time.Millisecond))
			restartEmpty(t, c, opts...)
			took = waitUntil(t, 5*time.Second, "Ready true within 5s of the broker's return", b.Ready)
			t.Logf("Ready true %v after the broker restarted", took.Round(time.Millisecond))

			// Replies produced once the topic exists again (whoever created
			// it) must all arrive.
			sent := map[string]bool{}
			deadline := time.Now().Add(15 * time.Second)
			for len(sent) < 10 {
				if time.Now().After(deadline) {
					t.Fatalf("only %d replies could be published within 15s of the restart", len(sent))
				}
				id, m := reply(t, "after the restart")
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				err := pub.Publish(ctx, topic, m)
				cancel()
				if err == nil {
					sent[id] = true
					continue
				}
				if !errors.Is(err, brokers.ErrUnroutable) && !errors.Is(err, brokers.ErrUnavailable) {
					t.Fatalf("publish after the restart: %v", err)
				}
				time.Sleep(100 * time.Millisecond) // pace of a publisher retrying
			}
			for len(sent) > 0 {
				id := recv(t, got, "reply produced after the empty restart")
				delete(sent, id)
			}
			if !b.Ready() {
				t.Error("Ready false while the inbox delivers")
			}
		})
	}
}

// TestGroupSurvivesEmptyRestart: a service's consumer group and a
// publisher after the broker came back empty, request topic gone. With
// auto_create_topics the consumer recreates its topic and a publish then
// succeeds; without it a publish fails with ErrUnroutable (the gateway's
// 503), the consumer keeps waiting (Subscribe does not return) and
// consumes the topic once an operator creates it again.
func TestGroupSurvivesEmptyRestart(t *testing.T) {
	if os.Getenv(brokersEnv) != "" {
		t.Skip("stops the broker: kfake only")
	}
	for _, autoCreate := range []bool{true, false} {
		t.Run(fmt.Sprintf("auto_create_topics=%v", autoCreate), func(t *testing.T) {
			c := newFake(t)
			cfg := c.config()
			cfg.AutoCreateTopics = autoCreate
			topic := c.topic(t, "svc.empty-restart", 4)
			got := make(chan string, 16)
			s := subscribe(t, c.subscriber(t, cfg), topic, func(ctx context.Context, m brokers.Message) error {
				got <- string(m.Body)
				return nil
			})
			pub := c.publisher(t, cfg)
			if err := pub.Publish(publishCtx(t), topic, brokers.Message{Key: "k", Body: []byte("before")}); err != nil {
				t.Fatal(err)
			}
			if b := recv(t, got, "request before the restart"); b != "before" {
				t.Fatalf("got %q", b)
			}

			c.fake.Close()
			c2 := restartEmpty(t, c)
			if !autoCreate {
				// The topic is gone and nobody may create it: a publish
				// fails as unroutable, the consumer does not give up.
				waitUntil(t, 15*time.Second, "publish fails with ErrUnroutable", func() bool {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					defer cancel()
					err := pub.Publish(ctx, topic, brokers.Message{Key: "k", Body: []byte("lost")})
					if err == nil {
						t.Fatal("publish to a topic the broker no longer has succeeded")
					}
					return errors.Is(err, brokers.ErrUnroutable)
				})
				select {
				case err := <-s.done:
					s.done <- err
					t.Fatalf("Subscribe returned %v while its topic was missing; it must wait for it", err)
				case <-time.After(3 * time.Second): // several join attempts
				}
				c.brokers = c2.ListenAddrs()
				a := newAdmin(&cfg, security{}, topic)
				defer a.close()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := a.createTopic(ctx, topic, 4, 0); err != nil {
					t.Fatal(err)
				}
			}
			waitUntil(t, 20*time.Second, "a publish succeeds after the restart", func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				return pub.Publish(ctx, topic, brokers.Message{Key: "k", Body: []byte("after")}) == nil
			})
			if b := recv(t, got, "request after the restart"); b != "after" {
				t.Fatalf("got %q", b)
			}
		})
	}
}

// TestInboxUnderLoadNotLost: the inbox's probes run while replies stream in
// (records fetched between a probe's reads must not look like offsets
// beyond the topic's end): no reply is delivered twice, none is missing,
// and Ready stays true.
func TestInboxUnderLoadNotLost(t *testing.T) {
	c := newCluster(t)
	cfg := c.config()
	topic := "syncgate.reply.load-" + uuid.NewString()
	sub := c.subscriber(t, cfg)
	got := make(chan string, 4096)
	subscribe(t, sub, topic, collectIDs(got), brokers.AsInbox(), brokers.WithConcurrency(4))
	pub := c.publisher(t, cfg)

	sent := map[string]bool{}
	notReady := 0
	for end := time.Now().Add(4 * inboxProbeInterval); time.Now().Before(end); {
		id, m := reply(t, "load")
		if err := pub.Publish(publishCtx(t), topic, m); err != nil {
			t.Fatal(err)
		}
		sent[id] = true
		if !sub.Ready() {
			notReady++
		}
	}
	seen := map[string]bool{}
	for len(seen) < len(sent) {
		id := recv(t, got, "reply")
		if seen[id] {
			t.Fatalf("reply %s delivered twice (after %d of %d): the inbox thought its topic lost", id, len(seen), len(sent))
		}
		if !sent[id] {
			t.Fatalf("unknown reply %s", id)
		}
		seen[id] = true
	}
	select {
	case id := <-got:
		t.Fatalf("reply %s delivered again after all %d", id, len(sent))
	case <-time.After(2 * inboxProbeInterval):
	}
	if notReady > 0 {
		t.Errorf("Ready was false %d times under load", notReady)
	}
	t.Logf("%d replies, each delivered once", len(sent))
}

// TestReadyFalseWhileUnreachableAtStart: an inbox that cannot reach its
// broker at start makes Ready false after its first failed attempt.
func TestReadyFalseWhileUnreachableAtStart(t *testing.T) {
	b, err := New(Config{Brokers: []string{closedPort(t)}, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.Subscribe(ctx, "syncgate.reply.unreachable", func(context.Context, brokers.Message) error { return nil }, brokers.AsInbox())
	}()
	took := waitUntil(t, 5*time.Second, "Ready false with the broker unreachable", func() bool { return !b.Ready() })
	t.Logf("Ready false after %v", took.Round(time.Millisecond))
	cancel()
	if err := recv(t, done, "Subscribe's return"); err != nil {
		t.Fatalf("Subscribe returned %v after its context ended", err)
	}
}

// TestPublisherRecreatesTopicAfterEmptyRestart: a publisher with
// auto_create_topics on a broker that creates topics on request recreates
// a topic the broker lost, within metadata_ttl of the restart (its cached
// metadata still listed the topic until then).
func TestPublisherRecreatesTopicAfterEmptyRestart(t *testing.T) {
	if os.Getenv(brokersEnv) != "" {
		t.Skip("stops the broker: kfake only")
	}
	c := newFake(t)
	cfg := c.config()
	cfg.AutoCreateTopics = true
	topic := c.topic(t, "svc.publisher-restart", 4)
	pub := c.publisher(t, cfg)
	if err := pub.Publish(publishCtx(t), topic, brokers.Message{Key: "k", Body: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	c.fake.Close()
	restartEmpty(t, c, kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(4))
	var last error
	took := waitUntil(t, 20*time.Second, "a publish succeeds after the empty restart", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		last = pub.Publish(ctx, topic, brokers.Message{Key: "k", Body: []byte("after")})
		return last == nil
	})
	t.Logf("publish succeeded %v after the restart", took.Round(time.Millisecond))
	got := make(chan string, 2)
	subscribe(t, c.subscriber(t, cfg), topic, func(ctx context.Context, m brokers.Message) error {
		got <- string(m.Body)
		return nil
	})
	if b := recv(t, got, "the record published after the restart"); b != "after" {
		t.Fatalf("got %q", b)
	}
}
