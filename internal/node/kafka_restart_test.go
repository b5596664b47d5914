package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/kafka"
	"github.com/syncgate/syncgate/brokers/responder"
	"github.com/syncgate/syncgate/brokers/responder/demo"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

// startKfake runs an empty kfake broker on 127.0.0.1:port with the demo
// topics, as `go run ./cmd/kafka-embedded -topics demo.echo,demo.sleep`
// does (no data dir: every start is empty).
func startKfake(t *testing.T, port int) *kfake.Cluster {
	t.Helper()
	kf, err := kfake.NewCluster(kfake.Ports(port), kfake.NumBrokers(1),
		kfake.SeedTopics(4, demo.EchoDestination, demo.SleepDestination),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(2 << 20)}))
	if err != nil {
		t.Fatalf("kfake on port %d: %v", port, err)
	}
	return kf
}

// restartKafkaConfig is a Kafka configuration that notices a broker
// restart within a second or two.
func restartKafkaConfig(addrs []string) kafka.Config {
	return kafka.Config{
		Brokers: addrs, ReadBackoffMin: 20 * time.Millisecond, ReadBackoffMax: 200 * time.Millisecond,
		JoinGroupBackoff: 200 * time.Millisecond, SessionTimeout: 6 * time.Second, HeartbeatInterval: 500 * time.Millisecond,
		MetadataTTL: time.Second, Logger: slog.New(slog.DiscardHandler),
	}
}

// startKafkaDemo runs the demo service on Kafka, as cmd/demo does, until
// the test ends, and returns once it is ready; wrap, when set, wraps its
// subscriber (to watch what it is handed).
func startKafkaDemo(t *testing.T, kcfg kafka.Config, wrap func(brokers.Subscriber) brokers.Subscriber) {
	t.Helper()
	svcBroker, err := kafka.New(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	var sub brokers.Subscriber = svcBroker
	if wrap != nil {
		sub = wrap(svcBroker)
	}
	svcCtx, stopSvc := context.WithCancel(context.Background())
	svcDone := make(chan error, 1)
	svcReady := make(chan struct{})
	go func() {
		svc := &responder.Service{Subscriber: sub, Publisher: svcBroker, Logger: slog.New(slog.DiscardHandler)}
		svcDone <- demo.Serve(svcCtx, svc, func() { close(svcReady) })
	}()
	t.Cleanup(func() {
		stopSvc()
		<-svcDone
		_ = svcBroker.Close()
	})
	select {
	case <-svcReady:
	case <-time.After(20 * time.Second):
		t.Fatal("demo service not ready within 20s")
	}
}

// TestKafkaBrokerRestartsEmpty: the README's Kafka walkthrough (broker,
// demo service and gateway as separate parts) under steady load, with the
// broker stopped and started again empty with the same command. While it
// is down /readyz answers 503; within 5 s of it being back /readyz answers
// 200; requests are served again without restarting gateway or service;
// every request is accounted for: 200 with its own body, or a 503/504
// problem.
func TestKafkaBrokerRestartsEmpty(t *testing.T) {
	port := testenv.FreePort(t)
	kf := startKfake(t, port)
	defer func() { kf.Close() }()
	brokersAddr := []string{fmt.Sprintf("127.0.0.1:%d", port)}
	kcfg := restartKafkaConfig(brokersAddr)
	// The demo service, as cmd/demo runs it.
	startKafkaDemo(t, kcfg, nil)

	// The gateway, as examples/kafka.yaml configures it.
	cfg := node.Embedded()
	cfg.Addr = "127.0.0.1:0"
	cfg.Node = "restart-" + strconv.Itoa(port)
	cfg.Demo.Enabled = false
	cfg.Broker.Kind = "kafka"
	cfg.Broker.Kafka = kcfg
	cfg.Shutdown.ReadinessDelay = time.Millisecond
	cfg.Routes = []node.RouteConfig{{Name: "echo", Method: "POST", Path: "/k/echo",
		Destination: demo.EchoDestination, Mode: "sync", Timeout: 2 * time.Second}}
	n := start(t, cfg)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	t.Cleanup(client.CloseIdleConnections)
	readyz := func() int {
		resp, err := client.Get(n.base + "/readyz")
		if err != nil {
			t.Fatalf("/readyz: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	waitReadyz := func(want int, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for readyz() != want {
			if time.Since(start) > within {
				t.Fatalf("/readyz did not answer %d within %v", want, within)
			}
			time.Sleep(20 * time.Millisecond) // probe period of a bounded condition wait
		}
		return time.Since(start)
	}
	waitReadyz(http.StatusOK, 10*time.Second)

	// Steady load: 4 callers, each request with a body of its own, bounded
	// in count and time.
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		bad      []string
		ok200    = make(chan struct{}, 100_000)
		down503  = make(chan struct{}, 100_000) // broker-unavailable answers
	)
	loadCtx, stopLoad := context.WithTimeout(context.Background(), 60*time.Second)
	defer stopLoad()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; i < 20_000 && loadCtx.Err() == nil; i++ {
				body := fmt.Sprintf("w%d-r%d", w, i)
				resp, err := client.Post(n.base+"/k/echo", "text/plain", strings.NewReader(body))
				if err != nil {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s: %v", body, err))
					mu.Unlock()
					continue
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				switch resp.StatusCode {
				case http.StatusOK:
					if string(got) != body {
						bad = append(bad, fmt.Sprintf("%s answered %q", body, got))
					}
					ok200 <- struct{}{}
				case http.StatusServiceUnavailable, http.StatusGatewayTimeout:
					var p struct{ Type string }
					if json.Unmarshal(got, &p) != nil || !strings.HasPrefix(p.Type, "urn:syncgate:problem:") {
						bad = append(bad, fmt.Sprintf("%s: %d without a problem: %q", body, resp.StatusCode, got))
					}
					if p.Type == "urn:syncgate:problem:broker-unavailable" {
						down503 <- struct{}{}
					}
				default:
					bad = append(bad, fmt.Sprintf("%s: unexpected %d %q", body, resp.StatusCode, got))
				}
				mu.Unlock()
			}
		})
	}
	waitOK := func(what string, within time.Duration) {
		t.Helper()
		deadline := time.After(within)
		for range 20 {
			select {
			case <-ok200:
			case <-deadline:
				t.Fatalf("%s: fewer than 20 requests answered 200 within %v", what, within)
			}
		}
	}
	waitOK("before the restart", 20*time.Second)

	kf.Close() // Ctrl-C on kafka-embedded
	waitReadyz(http.StatusServiceUnavailable, 10*time.Second)
	// While it is down, requests fail fast and say why; none hangs.
	select {
	case <-down503:
	case <-time.After(10 * time.Second):
		t.Fatal("no request answered 503 broker-unavailable within 10s of the broker going down")
	}
	for len(ok200) > 0 { // what was answered before the broker went away
		<-ok200
	}
	kf = startKfake(t, port) // the same command again: an empty broker
	back := waitReadyz(http.StatusOK, 5*time.Second+time.Second)
	t.Logf("/readyz 200 %v after the broker was back", back)
	waitOK("after the restart", 30*time.Second)
	stopLoad()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("answers by status: %v", statuses)
	for _, b := range bad[:min(len(bad), 20)] {
		t.Error(b)
	}
	if back > 5*time.Second {
		t.Errorf("/readyz answered 200 %v after the broker was back, want within 5s", back)
	}
}
