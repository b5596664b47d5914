package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/kafka"
	"github.com/syncgate/syncgate/brokers/rabbitmq/rabbitmqtest"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// proxyOn listens on addr and forwards every connection to target, until
// the test ends.
func proxyOn(t *testing.T, addr, target string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
}

func rabbitConfig(addr string) node.Config {
	cfg := testConfig()
	cfg.Broker.Kind = "rabbitmq"
	cfg.Broker.RabbitMQ.URL = "amqp://guest:guest@" + addr + "/"
	cfg.Node = "startup-" + strings.ReplaceAll(addr, ":", "-")
	cfg.ReplyTo = ""
	return cfg
}

func status(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// An unreachable broker at start: the node listens, is healthy and not
// ready naming check, logs one WARN, and turns ready by itself once
// appear makes the server reachable at addr.
func startLate(t *testing.T, cfg node.Config, addr, check string, appear func()) {
	t.Helper()
	// No demo service: on a shared RabbitMQ it would consume other tests'
	// demo requests and log their WARNs here.
	cfg.Demo.Enabled = false
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs testenv.SyncBuffer
	n, err := node.New(cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("New with %s down: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	base := "http://" + n.Addr()
	if code, _ := status(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d, want 200", code)
	}
	// The check fails from the first failed attempt (Kafka's client dials
	// lazily: until then only reply-consumer fails, naming the address).
	var code int
	var body string
	for end := time.Now().Add(5 * time.Second); ; {
		code, body = status(t, base+"/readyz?verbose")
		if code == 503 && strings.Contains(body, check+":") && strings.Contains(body, addr) || time.Now().After(end) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != 503 || !strings.Contains(body, check+":") || !strings.Contains(body, addr) {
		t.Errorf("/readyz = %d %s, want 503 naming %q and %s within 5 s", code, body, check, addr)
	}
	// Several back-off steps pass (about 2 s): still one WARN.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("Run returned before the server appeared: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	appear()
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatalf("not ready 30 s after %s appeared:\n%s", addr, logs.String())
	}
	if code, body := status(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz after connecting = %d %s", code, body)
	}
	out := logs.String()
	if c := strings.Count(out, "level=WARN"); c != 1 {
		t.Errorf("%d WARN lines, want 1:\n%s", c, out)
	}
}

func TestStartWaitsForRabbitMQ(t *testing.T) {
	rabbitmqtest.Shared(t) // no outage test of brokers/rabbitmq stops it meanwhile
	testenv.RequireRabbitMQ(t)
	addr := closedAddr(t)
	startLate(t, rabbitConfig(addr), addr, "broker", func() { proxyOn(t, addr, "127.0.0.1:5672") })
}

// Cluster mode: the node id is taken once Redis appears, and only then
// does the node touch the broker and consume.
func TestStartWaitsForRedis(t *testing.T) {
	testenv.RequireRedis(t)
	rabbitmqtest.Shared(t)
	testenv.RequireRabbitMQ(t)
	addr := closedAddr(t)
	cfg := rabbitConfig("127.0.0.1:5672")
	cfg.Node = "late-redis-" + strings.ReplaceAll(addr, ":", "-")
	cfg.Cluster = clusterConfig(t, addr).Cluster
	startLate(t, cfg, addr, "node-id", func() { proxyOn(t, addr, testenv.RedisAddr) })
}

func TestStartWaitsForKafka(t *testing.T) {
	port := testenv.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := testConfig()
	cfg.Node = "late-kafka-" + strconv.Itoa(port)
	cfg.Demo.Enabled = false
	cfg.Broker.Kind = "kafka"
	cfg.Broker.Kafka = kafka.Config{Brokers: []string{addr}, ReadBackoffMin: 20 * time.Millisecond,
		ReadBackoffMax: 200 * time.Millisecond, JoinGroupBackoff: 200 * time.Millisecond, MetadataTTL: time.Second}
	cfg.Routes = cfg.Routes[:1]
	startLate(t, cfg, addr, "broker", func() {
		kf := startKfake(t, port)
		t.Cleanup(kf.Close)
	})
}

// --wait-for-broker: Run gives up within its limit, naming the address.
func TestWaitForBrokerGivesUp(t *testing.T) {
	addr := closedAddr(t)
	cfg := rabbitConfig(addr)
	cfg.Broker.WaitFor = 500 * time.Millisecond
	took, err := runUntilExit(t, cfg, 15*time.Second)
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "wait") {
		t.Fatalf("Run = %v, want an error naming %s", err, addr)
	}
	if errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	t.Logf("gave up after %v: %v", took, err)
}
