package node_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/brokers/kafka"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

// A node stops (a rolling deploy) while requests it accepted with 202 are
// still with the service, which answers to that node's reply topic as the
// wire contract says. Another node adopts the dead node's reply address
// once its lease is gone, stores the replies, and serves the polls.
func TestClusterAdoptsAStoppedNodesReplies(t *testing.T) {
	testenv.RequireRedis(t)
	fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "adopt.svc"))
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	kcfg := kafka.Config{
		Brokers: fake.ListenAddrs(), HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second,
		JoinGroupBackoff: 200 * time.Millisecond, CommitInterval: 100 * time.Millisecond, WriteTimeout: 30 * time.Second,
	}

	cfgA := clusterConfig(t, testenv.RedisAddr)
	cfgA.Node, cfgA.ReplyTo, cfgA.Demo.Enabled = "a", "syncgate.reply.a", false
	cfgA.Broker.Kind, cfgA.Broker.Kafka = "kafka", kcfg
	cfgA.Cluster.LeaseTTL = 300 * time.Millisecond
	cfgA.Routes = []node.RouteConfig{{Name: "async", Method: "PUT", Path: "/t/async", Destination: "adopt.svc", Mode: "async", Timeout: 20 * time.Second}}
	cfgA.SetDefaults()
	if err := cfgA.Validate(); err != nil {
		t.Fatal(err)
	}
	cfgB := cfgA
	cfgB.Node, cfgB.ReplyTo = "b", "syncgate.reply.b"
	a := startCluster(t, cfgA)
	b := startCluster(t, cfgB)

	// The service: takes requests, answers when the test says so.
	kcfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := kafka.New(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	reqs := make(chan envelope.Request, 4)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		served <- svc.Subscribe(ctx, "adopt.svc", func(_ context.Context, m brokers.Message) error {
			req, err := envelope.DecodeRequest(m)
			if err != nil {
				return nil
			}
			reqs <- req
			return nil
		}, brokers.WithGroup("adopt.svc"), brokers.WithReady(func() { close(ready) }))
	}()
	defer func() {
		cancel()
		<-served
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("service not ready")
	}

	resp, _ := send(t, "PUT", a.base+"/t/async", []byte("answered while a is gone"), nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PUT on a: %d", resp.StatusCode)
	}
	location := resp.Header.Get("Location")
	var req envelope.Request
	select {
	case req = <-reqs:
	case <-time.After(20 * time.Second):
		t.Fatal("the service got no request")
	}
	if req.ReplyTo != "syncgate.reply.a" {
		t.Fatalf("reply-to %q", req.ReplyTo)
	}
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	// Answered to a, which is gone.
	rep := envelope.Reply{CorrelationID: req.CorrelationID, Status: 200, ContentType: "text/plain", Body: req.Body}
	pctx, pcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer pcancel()
	if err := svc.Publish(pctx, req.ReplyTo, rep.Message()); err != nil {
		t.Fatal(err)
	}
	// b adopts a's reply topic within a few lease TTLs, and the poll on b
	// finds the reply.
	deadline := time.Now().Add(20 * time.Second)
	for !slices.Contains(b.Adopting(), "a") {
		if time.Now().After(deadline) {
			t.Fatalf("b did not adopt a; adopting %v", b.Adopting())
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
	if resp, body := pollUntilDone(t, b.base, location); resp.StatusCode != 200 || string(body) != "answered while a is gone" {
		t.Fatalf("poll on b: %d %q", resp.StatusCode, body)
	}
	// a comes back: b lets go.
	cfgA.Addr = "127.0.0.1:0"
	startCluster(t, cfgA)
	deadline = time.Now().Add(20 * time.Second)
	for slices.Contains(b.Adopting(), "a") {
		if time.Now().After(deadline) {
			t.Fatal("b still adopts a after a came back")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}
