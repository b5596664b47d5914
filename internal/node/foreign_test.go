package node_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/syncgate/syncgate/brokers/kafka"
	"github.com/syncgate/syncgate/brokers/rabbitmq/rabbitmqtest"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

// foreignDir holds the Node.js services of TestForeignServices and their
// package.json; .ci/run installs their dependencies (npm ci).
const foreignDir = "testdata/node"

// startForeign runs testdata/node/service.js for profile against the
// Kafka broker at addr, consuming topic, until the test ends; it returns
// once the service's consumer joined its group.
func startForeign(t *testing.T, profile, addr, topic string) {
	t.Helper()
	runForeign(t, profile, "service.js", profile, addr, topic)
}

// runForeign runs node with args in testdata/node until the test ends and
// returns once it printed ready.
func runForeign(t *testing.T, profile string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = foreignDir
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" {
				close(ready)
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		t.Fatalf("node service.js %s: not ready within 60s; stderr:\n%s", profile, stderr.String())
	}
}

// TestForeignServices: services written the way three other ecosystems
// write request/reply on Kafka, in Node.js with kafkajs, answer syncgate's
// routes of their profile without knowing syncgate: a Spring-style @SendTo
// listener (copies kafka_correlationId as bytes, replies to
// kafka_replyTopic), a Zilla-style service (zilla:correlation-id,
// zilla:reply-to, status in :status) and a CloudEvents binary-mode one
// (ce_* attributes, the correlation as the ce_correlationid extension).
func TestForeignServices(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		testenv.Unavailable(t, "this test runs Node.js services; node is not on PATH: %v", err)
	}
	if _, err := os.Stat(filepath.Join(foreignDir, "node_modules", "kafkajs")); err != nil {
		testenv.Unavailable(t, "kafkajs is not installed: run npm ci --prefix internal/node/%s (.ci/run does)", foreignDir)
	}
	port := testenv.FreePort(t)
	topics := map[string]string{"spring": "orders.spring", "zilla": "orders.zilla", "cloudevents": "orders.ce"}
	kf, err := kfake.NewCluster(kfake.Ports(port), kfake.NumBrokers(1),
		kfake.SeedTopics(1, topics["spring"], topics["zilla"], topics["cloudevents"]), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kf.Close)
	addr := "127.0.0.1:" + strconv.Itoa(port)

	cfg := testConfig()
	cfg.Demo.Enabled = false
	cfg.Node = "foreign-" + strconv.Itoa(port)
	cfg.Broker.Kind = "kafka"
	cfg.Broker.Kafka = kafka.Config{Brokers: []string{addr}}
	for profile, topic := range topics {
		cfg.Routes = append(cfg.Routes, node.RouteConfig{Name: profile, Method: "POST", Path: "/" + profile,
			Destination: topic, Profile: profile, Mode: "sync", Timeout: 20 * time.Second},
			node.RouteConfig{Name: profile + "-async", Method: "POST", Path: "/" + profile + "-async",
				Destination: topic, Profile: profile, Mode: "async", Timeout: 20 * time.Second})
	}
	n := start(t, cfg)
	for profile, topic := range topics {
		startForeign(t, profile, addr, topic)
	}
	for _, tc := range []struct {
		profile    string
		status     int
		body, ctyp string
	}{
		{"spring", http.StatusOK, "spring:hello", ""},
		{"zilla", http.StatusCreated, "zilla:hello", "text/plain"},
		{"cloudevents", http.StatusOK, "cloudevents:hello", "text/plain"},
	} {
		resp, body := send(t, "POST", n.base+"/"+tc.profile, []byte("hello"), nil)
		if resp.StatusCode != tc.status || string(body) != tc.body || (tc.ctyp != "" && resp.Header.Get("Content-Type") != tc.ctyp) {
			t.Errorf("%s: %d %q (%s), want %d %q (%s)", tc.profile, resp.StatusCode, body, resp.Header.Get("Content-Type"), tc.status, tc.body, tc.ctyp)
		}
		// A progress message in the profile's marking, then the reply,
		// on the request's event stream.
		loc := accepted(t, n.base+"/"+tc.profile+"-async?progress=1", "hello")
		s, sresp := testenv.OpenStream(t, http.DefaultClient, n.base+loc, "")
		if s == nil {
			t.Fatalf("%s: stream %d", tc.profile, sresp.StatusCode)
		}
		nextEvent(t, s, "pending", "0")
		if ev := nextEvent(t, s, "progress", "1"); !strings.Contains(ev.Data, `"body":"`+tc.profile+`:half"`) {
			t.Errorf("%s: progress %s", tc.profile, ev.Data)
		}
		if ev := nextEvent(t, s, "result", "2"); !strings.Contains(ev.Data, `"body":"`+tc.body+`"`) {
			t.Errorf("%s: result %s", tc.profile, ev.Data)
		}
		s.Close()
	}
}

// TestForeignServiceAMQP: services on RabbitMQ written with amqplib, a
// CloudEvents one in the AMQP binding's naming (cloudEvents:* headers;
// its cloudEvents:httpstatus becomes the response's) and a Spring AMQP
// @RabbitListener-style one (replies to reply_to with correlation_id),
// answer routes of profile cloudevents and spring.
func TestForeignServiceAMQP(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		testenv.Unavailable(t, "this test runs a Node.js service; node is not on PATH: %v", err)
	}
	if _, err := os.Stat(filepath.Join(foreignDir, "node_modules", "amqplib")); err != nil {
		testenv.Unavailable(t, "amqplib is not installed: run npm ci --prefix internal/node/%s (.ci/run does)", foreignDir)
	}
	rabbitmqtest.Shared(t)
	testenv.RequireRabbitMQ(t)
	queues := map[string]string{"cloudevents": rabbitmqtest.Unique("sgtest.ce"), "spring": rabbitmqtest.Unique("sgtest.spring")}
	cfg := testConfig()
	cfg.Demo.Enabled = false
	cfg.Node = rabbitmqtest.Unique("foreign")
	cfg.ReplyTo = ""
	cfg.Broker.Kind, cfg.Broker.RabbitMQ.URL = "rabbitmq", testenv.RabbitMQURL()
	cfg.Routes = nil
	for profile, queue := range queues {
		rabbitmqtest.DeleteQueueAtEnd(t, queue)
		runForeign(t, profile, "service-amqp.js", profile, testenv.RabbitMQURL(), queue)
		cfg.Routes = append(cfg.Routes, node.RouteConfig{Name: profile, Method: "POST", Path: "/" + profile, Destination: queue,
			Profile: profile, Mode: "sync", Timeout: 10 * time.Second})
	}
	n := start(t, cfg)
	resp, body := send(t, "POST", n.base+"/cloudevents", []byte("hello"), nil)
	if resp.StatusCode != http.StatusAccepted || string(body) != "cloudevents-amqp:hello" || resp.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("cloudevents: %d %q (%s), want 202 from the service's httpstatus, cloudevents-amqp:hello, text/plain", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
	resp, body = send(t, "POST", n.base+"/spring", []byte("hello"), nil)
	if resp.StatusCode != http.StatusOK || string(body) != "spring-amqp:hello" {
		t.Errorf("spring: %d %q, want 200 spring-amqp:hello", resp.StatusCode, body)
	}
}
