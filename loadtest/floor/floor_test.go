package floor_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/syncgate/syncgate/brokers/rabbitmq/rabbitmqtest"
	"github.com/syncgate/syncgate/internal/testenv"
	"github.com/syncgate/syncgate/loadtest/floor"
)

// startGateway runs floor.Gateway until the test ends and returns its base
// URL once it listens.
func startGateway(t *testing.T, cfg floor.GatewayConfig) string {
	t.Helper()
	addr := make(chan string, 1)
	cfg.Listening = func(a string) { addr <- a }
	return "http://" + startFloor(t, "gateway", addr, func(ctx context.Context) error { return floor.Gateway(ctx, cfg) })
}

// startEcho runs floor.Echo until the test ends and returns once it
// consumes.
func startEcho(t *testing.T, cfg floor.EchoConfig) {
	t.Helper()
	ready := make(chan string, 1)
	cfg.Ready = func() { ready <- "" }
	startFloor(t, "echo", ready, func(ctx context.Context) error { return floor.Echo(ctx, cfg) })
}

// startFloor runs run until the test ends (and checks it then returns
// nil) and returns what started sends first.
func startFloor(t *testing.T, what string, started <-chan string, run func(context.Context) error) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s returned %v after its context ended", what, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("%s still running 30s after its context ended", what)
		}
	})
	select {
	case s := <-started:
		return s
	case err := <-done:
		t.Fatalf("%s returned before starting: %v", what, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s not started within 30s", what)
	}
	return ""
}

// post sends body to url and returns the status, the content type and
// the body of the answer.
func post(ctx context.Context, client *http.Client, url, body string) (int, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewBufferString(body))
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b), err
}

// echoAll sends n requests, 16 at a time, each with a body of its own, and
// checks that every one is answered 200 with its own body and content type.
func echoAll(t *testing.T, url string, n int) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(client.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			body := fmt.Sprintf("request %d of %s %d", i, t.Name(), time.Now().UnixNano())
			status, ct, got, err := post(ctx, client, url, body)
			switch {
			case err != nil:
				errs <- fmt.Errorf("request %d: %w", i, err)
			case status != http.StatusOK || got != body || ct != "text/plain":
				errs <- fmt.Errorf("request %d: %d %q %q, want 200 %q text/plain", i, status, got, ct, body)
			}
		})
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if failed++; failed <= 5 {
			t.Error(err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d requests not echoed", failed, n)
	}
}

func newKfake(t *testing.T, topics ...string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func TestEchoServer(t *testing.T) {
	addr := make(chan string, 1)
	base := startFloor(t, "echo server", addr, func(ctx context.Context) error {
		return floor.EchoServer(ctx, floor.EchoServerConfig{Listening: func(a string) { addr <- a }})
	})
	echoAll(t, "http://"+base+"/any/path", 100)
	resp, err := http.Get("http://" + base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}
}

// The naive pair over Kafka (kfake): every echo comes back to its caller.
func TestKafkaPair(t *testing.T) {
	addrs := newKfake(t, "naive.requests")
	b := floor.Broker{Kind: floor.Kafka, KafkaBrokers: addrs, Topic: "naive.requests"}
	startEcho(t, floor.EchoConfig{Broker: b})
	base := startGateway(t, floor.GatewayConfig{Broker: b})
	echoAll(t, base+"/echo", 100)
}

// A request nobody answers is a 504 once the gateway's timeout passes.
func TestKafkaGatewayTimeout(t *testing.T) {
	addrs := newKfake(t, "naive.unanswered")
	base := startGateway(t, floor.GatewayConfig{
		Broker:  floor.Broker{Kind: floor.Kafka, KafkaBrokers: addrs, Topic: "naive.unanswered"},
		Timeout: 300 * time.Millisecond,
	})
	status, _, _, err := post(t.Context(), http.DefaultClient, base+"/x", "hello")
	if err != nil || status != http.StatusGatewayTimeout {
		t.Fatalf("status %d, %v; want 504", status, err)
	}
}

// The naive pair over the real RabbitMQ.
func TestRabbitMQPair(t *testing.T) {
	url := testenv.RequireRabbitMQ(t)
	rabbitmqtest.Shared(t)
	q := rabbitmqtest.Unique("naive.test")
	rabbitmqtest.DeleteQueueAtEnd(t, q)
	b := floor.Broker{Kind: floor.RabbitMQ, RabbitMQURL: url, Queue: q}
	startEcho(t, floor.EchoConfig{Broker: b})
	base := startGateway(t, floor.GatewayConfig{Broker: b})
	echoAll(t, base+"/echo", 100)
	if n := rabbitmqtest.Messages(q); n != 0 {
		t.Errorf("%d requests left in %s, want 0", n, q)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		b    floor.Broker
		want string
	}{
		{floor.Broker{Kind: "nats"}, `broker "nats"`},
		{floor.Broker{Kind: floor.Kafka, Topic: "t"}, "KafkaBrokers"},
		{floor.Broker{Kind: floor.Kafka, KafkaBrokers: []string{"127.0.0.1:9092"}}, "Topic"},
		{floor.Broker{Kind: floor.RabbitMQ, Queue: "q"}, "RabbitMQURL"},
		{floor.Broker{Kind: floor.RabbitMQ, RabbitMQURL: "amqp://127.0.0.1/"}, "Queue"},
	} {
		err := floor.Gateway(t.Context(), floor.GatewayConfig{Broker: tc.b})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Gateway(%+v): %v, want an error naming %s", tc.b, err, tc.want)
		}
		if err2 := floor.Echo(t.Context(), floor.EchoConfig{Broker: tc.b}); err2 == nil || err2.Error() != err.Error() {
			t.Errorf("Echo(%+v): %v, want %v", tc.b, err2, err)
		}
	}
}
