package replay_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/brokers/memory"
	"github.com/syncgate/syncgate/replay"
	"github.com/syncgate/syncgate/tap"
)

// Straight to the broker: each request is published as the gateway would
// (destination, allow-listed headers, decoded path, the original's
// principal, Replay-Of), with an id of its own, and its reply's status is
// reported; a route with no service answers 504 after its timeout, and
// an exchange of an unknown route is not sent.
func TestSendToBroker(t *testing.T) {
	b := memory.New(memory.Config{})
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var seen []envelope.Request
	svcReady := make(chan struct{})
	go func() {
		_ = b.Subscribe(ctx, "orders", func(ctx context.Context, m brokers.Message) error {
			req, err := envelope.DecodeRequest(m)
			if err != nil {
				return nil
			}
			mu.Lock()
			seen = append(seen, req)
			mu.Unlock()
			return b.Publish(ctx, req.ReplyTo, envelope.Reply{CorrelationID: req.CorrelationID, Status: 201}.Message())
		}, brokers.WithReady(func() { close(svcReady) }))
	}()
	<-svcReady
	br := &replay.Broker{Publisher: b, Subscriber: b, ReplyTo: "syncgate.replay.test", Routes: map[string]replay.BrokerRoute{
		"orders": {Destination: "orders", ForwardHeaders: []string{"X-Tenant"}, Timeout: 5 * time.Second},
		"pay":    {Destination: "nobody", Timeout: 100 * time.Millisecond},
	}}
	inboxReady := make(chan struct{})
	go func() { _ = br.Run(ctx, func() { close(inboxReady) }) }()
	<-inboxReady

	xs := []tap.Exchange{
		{Route: "orders", CorrelationID: "orig-1", Principal: "alice", Request: tap.Request{Method: "POST", Path: "/orders/a%2Fb", Query: "n=1",
			Header: map[string][]string{"Content-Type": {"application/json"}, "X-Tenant": {"7"}, "X-Other": {"no"}}, Body: []byte(`{}`)}},
		{Route: "pay", CorrelationID: "orig-2", Request: tap.Request{Method: "POST", Path: "/pay"}},
		{Route: "gone", CorrelationID: "orig-3", Request: tap.Request{Method: "POST", Path: "/gone"}},
	}
	rep, err := replay.Send(ctx, replay.Config{Target: "broker", Broker: br, Rate: 100, Header: http.Header{"X-Tenant": {"8"}}}, xs)
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Results[0]; r.Status != 201 || r.ID == "" || r.ID == "orig-1" {
		t.Errorf("orders: %+v, want 201 with an id of its own", r)
	}
	if r := rep.Results[1]; r.Status != http.StatusGatewayTimeout {
		t.Errorf("pay (no service): %+v, want 504", r)
	}
	if r := rep.Results[2]; r.Error == "" || r.Status != 0 {
		t.Errorf("unknown route: %+v, want an error", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 {
		t.Fatalf("the service saw %d requests, want 1", len(seen))
	}
	s := seen[0]
	if s.CorrelationID != rep.Results[0].ID || s.Path != "/orders/a/b" || s.Query != "n=1" || s.Principal != "alice" ||
		s.ContentType != "application/json" || s.Header["x-tenant"] != "8" || s.Header["x-other"] != "" ||
		s.Header["replay-of"] != "orig-1" || string(s.Body) != "{}" {
		t.Errorf("published request %+v", s)
	}
}
