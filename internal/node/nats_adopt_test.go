package node_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	natsb "github.com/syncgate/syncgate/brokers/nats"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

// Adoption on NATS (see adopt.go): a node's reply subject is core NATS in
// both modes, so nothing keeps a reply published while nobody subscribes.
// Node a stops while the service holds two of its async requests; the
// reply to the first is published before b adopts a's reply subject and is
// lost (the request stays pending), the reply to the second after, and b
// stores it for the poll. Then a comes back under its id: b lets go and a
// consumes its subject again (its inbox probe finds no one answering).
func TestClusterAdoptsOnNATS(t *testing.T) {
	for _, mode := range []string{natsb.ModeCore, natsb.ModeJetStream} {
		t.Run(mode, func(t *testing.T) { clusterAdoptsOnNATS(t, mode) })
	}
}

func clusterAdoptsOnNATS(t *testing.T, mode string) {
	testenv.RequireRedis(t)
	srv := testenv.StartNATSServer(t, true)
	ncfg := restartNATSConfig(srv.URL, mode)

	// The service: takes requests, answers when the test says so, with a
	// connection of its own so that a publish can be flushed (the reply is
	// at the server when Flush returns).
	svc, err := natsb.Dial(ncfg)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	replier, err := natsgo.Connect(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer replier.Close()
	reqs := make(chan envelope.Request, 4)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		served <- svc.Subscribe(ctx, "adopt.svc", func(_ context.Context, m brokers.Message) error {
			if req, err := envelope.DecodeRequest(m); err == nil {
				reqs <- req
			}
			return nil
		}, brokers.WithGroup("adopt-svc"), brokers.WithReady(func() { close(ready) }))
	}()
	defer func() {
		cancel()
		<-served
	}()
	select {
	case <-ready:
	case <-time.After(15 * time.Second):
		t.Fatal("service not ready")
	}

	cfgA := clusterConfig(t, testenv.RedisAddr)
	cfgA.Node, cfgA.ReplyTo, cfgA.Demo.Enabled = "a", "syncgate.reply.a", false
	cfgA.Broker.Kind, cfgA.Broker.NATS = "nats", ncfg
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

	var locations []string
	var held []envelope.Request
	for _, body := range []string{"lost in the gap", "answered while a is gone"} {
		resp, got := send(t, "PUT", a.base+"/t/async", []byte(body), nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("PUT on a: %d %s", resp.StatusCode, got)
		}
		locations = append(locations, resp.Header.Get("Location"))
		select {
		case req := <-reqs:
			if req.ReplyTo != "syncgate.reply.a" || string(req.Body) != body {
				t.Fatalf("the service got reply-to %q, body %q", req.ReplyTo, req.Body)
			}
			held = append(held, req)
		case <-time.After(15 * time.Second):
			t.Fatal("the service got no request")
		}
	}
	reply := func(req envelope.Request) {
		t.Helper()
		rep := envelope.Reply{CorrelationID: req.CorrelationID, Status: 200, ContentType: "text/plain", Body: req.Body}
		m := rep.Message()
		msg := &natsgo.Msg{Subject: req.ReplyTo, Header: natsgo.Header{}, Data: m.Body}
		for k, v := range m.Headers {
			msg.Header[k] = []string{v} // as brokers/nats sends them: lower-case names
		}
		if err := replier.PublishMsg(msg); err != nil {
			t.Fatal(err)
		}
		if err := replier.Flush(); err != nil {
			t.Fatal(err)
		}
	}

	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	// Answered to a, which is gone, before b adopted it: nobody subscribes
	// to a's subject, and core NATS keeps nothing.
	reply(held[0])
	gap := !slices.Contains(b.Adopting(), "a") // b had not started consuming when the reply was at the server
	testenv.Eventually(t, 15*time.Second, "b adopts a", func() bool { return slices.Contains(b.Adopting(), "a") })
	// Answered once b consumes a's subject: b stores it for the poll. (b
	// marks the adoption just before it subscribes: answer until the
	// reply arrives, as a service retrying its publish would.)
	testenv.Eventually(t, 15*time.Second, "the reply published after the adoption is stored on b", func() bool {
		reply(held[1])
		resp, body := send(t, "GET", b.base+locations[1], nil, nil)
		return resp.StatusCode == http.StatusOK && string(body) == "answered while a is gone"
	})
	if resp, body := send(t, "GET", b.base+locations[0], nil, nil); gap && resp.StatusCode != http.StatusAccepted {
		t.Errorf("the reply published before the adoption: poll %d %s, want 202 (lost: still pending)", resp.StatusCode, body)
	} else if !gap {
		t.Logf("b adopted a before the first reply was published: the gap was not exercised")
	}

	// a comes back: b lets go, and a consumes its own subject again.
	cfgA.Addr = "127.0.0.1:0"
	startCluster(t, cfgA)
	testenv.Eventually(t, 15*time.Second, "b lets a go", func() bool { return !slices.Contains(b.Adopting(), "a") })
}
