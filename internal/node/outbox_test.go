package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/brokers/responder/demo"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

// countingSubscriber counts, per correlation id, the requests a service
// is handed.
type countingSubscriber struct {
	brokers.Subscriber
	mu   sync.Mutex
	seen map[string]int
}

func (c *countingSubscriber) Subscribe(ctx context.Context, source string, h brokers.Handler, opts ...brokers.SubscribeOption) error {
	return c.Subscriber.Subscribe(ctx, source, func(ctx context.Context, m brokers.Message) error {
		c.mu.Lock()
		c.seen[m.Headers[envelope.CorrelationID]]++
		c.mu.Unlock()
		return h(ctx, m)
	}, opts...)
}

// TestOutboxKafkaBrokerDown is issue 21's outbox test: with
// kafka-embedded stopped, 1 000 respond-async requests on a route with an
// outbox are all answered 202, their polls saying "queued"; once it is
// started again (the same command, empty) the relay publishes every one
// of them exactly once, and every poll ends in its own reply.
func TestOutboxKafkaBrokerDown(t *testing.T) {
	const requests = 1000
	port := testenv.FreePort(t)
	kf := startKfake(t, port)
	defer func() { kf.Close() }()
	kcfg := restartKafkaConfig([]string{fmt.Sprintf("127.0.0.1:%d", port)})

	// The demo service, counting what it is handed.
	counted := &countingSubscriber{seen: map[string]int{}}
	startKafkaDemo(t, kcfg, func(s brokers.Subscriber) brokers.Subscriber {
		counted.Subscriber = s
		return counted
	})

	cfg := node.Embedded()
	cfg.Addr = "127.0.0.1:0"
	cfg.Node = "outbox-" + strconv.Itoa(port)
	cfg.Demo.Enabled = false
	cfg.Broker.Kind = "kafka"
	cfg.Broker.Kafka = kcfg
	// The default publish_timeout (5 s): a publish to a broker that is
	// down is refused at once, so the 202s do not wait for it, and the
	// relay's first publishes once it is back are not given up while
	// Kafka is still writing them (with 500 ms, a fresh-clone run under
	// load published one twice: at-least-once, but not what this test
	// measures).
	cfg.Shutdown.ReadinessDelay = time.Millisecond
	cfg.Outbox = node.OutboxConfig{Store: "bolt", Path: filepath.Join(t.TempDir(), "outbox.db"), Retry: 200 * time.Millisecond}
	cfg.Routes = []node.RouteConfig{{Name: "echo", Method: "POST", Path: "/k/echo",
		Destination: demo.EchoDestination, Mode: "auto", Wait: 5 * time.Second, Timeout: time.Minute, Outbox: true}}
	n := start(t, cfg)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	t.Cleanup(client.CloseIdleConnections)

	// One round trip with the broker up, then it goes away.
	if resp, body := send(t, "POST", n.base+"/k/echo", []byte("warm"), nil); resp.StatusCode != 200 || string(body) != "warm" {
		t.Fatalf("before the outage: %d %q", resp.StatusCode, body)
	}
	kf.Close() // Ctrl-C on kafka-embedded

	type accepted struct{ body, location string }
	var (
		mu   sync.Mutex
		got  []accepted
		bad  []string
		work = make(chan int)
		wg   sync.WaitGroup
	)
	for range 50 {
		wg.Go(func() {
			for i := range work {
				body := fmt.Sprintf("queued-%04d", i)
				req, _ := http.NewRequestWithContext(t.Context(), "POST", n.base+"/k/echo", strings.NewReader(body))
				req.Header.Set("Prefer", "respond-async")
				resp, err := client.Do(req)
				if err != nil {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s: %v", body, err))
					mu.Unlock()
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var pb struct{ Status string }
				_ = json.Unmarshal(b, &pb)
				mu.Lock()
				if resp.StatusCode != http.StatusAccepted || pb.Status != "queued" || resp.Header.Get("Location") == "" {
					bad = append(bad, fmt.Sprintf("%s: %d %s", body, resp.StatusCode, b))
				} else {
					got = append(got, accepted{body, resp.Header.Get("Location")})
				}
				mu.Unlock()
			}
		})
	}
	for i := range requests {
		work <- i
	}
	close(work)
	wg.Wait()
	for _, b := range bad[:min(len(bad), 10)] {
		t.Error(b)
	}
	if len(got) != requests {
		t.Fatalf("%d of %d requests answered 202 queued while the broker was down", len(got), requests)
	}
	// A poll says queued while the broker is down.
	if resp, body := send(t, "GET", n.base+got[0].location, nil, nil); resp.StatusCode != 202 || !strings.Contains(string(body), `"queued"`) {
		t.Fatalf("poll while down: %d %s", resp.StatusCode, body)
	}

	// The outbox's depth is part of /readyz?verbose (the node is not
	// ready: its broker is down).
	if resp, body := send(t, "GET", n.base+"/readyz?verbose", nil, nil); !strings.Contains(string(body), fmt.Sprintf("outbox: %d queued", requests)) {
		t.Errorf("/readyz?verbose: %d %s; want the outbox's depth", resp.StatusCode, body)
	}

	kf = startKfake(t, port) // the same command again
	deadline := time.Now().Add(50 * time.Second)
	for _, a := range got {
		for {
			resp, err := client.Get(n.base + a.location)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if string(b) != a.body {
					t.Fatalf("%s answered %q", a.body, b)
				}
				break
			}
			if resp.StatusCode != http.StatusAccepted || time.Now().After(deadline) {
				t.Fatalf("poll of %s: %d %s (deadline passed: %v)", a.body, resp.StatusCode, b, time.Now().After(deadline))
			}
			time.Sleep(50 * time.Millisecond) // the poll interval of a client
		}
	}
	counted.mu.Lock()
	defer counted.mu.Unlock()
	twice := 0
	for _, c := range counted.seen {
		if c > 1 {
			twice++
		}
	}
	if len(counted.seen) != requests+1 || twice != 0 {
		t.Errorf("the service was handed %d distinct requests (want %d), %d more than once", len(counted.seen), requests+1, twice)
	}
}
