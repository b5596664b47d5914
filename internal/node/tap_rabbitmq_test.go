package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/rabbitmq"
	"github.com/syncgate/syncgate/brokers/rabbitmq/rabbitmqtest"
	"github.com/syncgate/syncgate/brokers/responder"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
	"github.com/syncgate/syncgate/tap"
	"github.com/syncgate/syncgate/tap/publish"
)

// A broker sink on RabbitMQ with exchange and routing_key (issue 21: a
// tap to "a RabbitMQ exchange") publishes each exchange of the tapped
// route to the operator's topic exchange: the queue bound to it for
// audit.* gets one JSON message per request, marked as a tap's
// (syncgate-tap: exchange, application/json), keyed by the correlation id
// the caller got back, the request as it came but its Authorization.
func TestTapToRabbitMQExchange(t *testing.T) {
	rabbitmqtest.Shared(t)
	url := testenv.RequireRabbitMQ(t)
	const requests = 20
	const routingKey = "audit.exchanges"
	id := rabbitmqtest.Unique("sgtest.tap")
	exchange, auditQueue, work := id+".x", id+".audit", id+".work"
	rabbitmqtest.DeleteQueueAtEnd(t, auditQueue)
	rabbitmqtest.DeleteQueueAtEnd(t, work)
	rabbitmqtest.DeleteExchangeAtEnd(t, exchange)
	rmq := rabbitmq.Config{URL: url, ConnectionName: id, DeadLetterExchange: id + ".dlx", DeadLetterQueue: id + ".dlq",
		Logger: slog.New(slog.DiscardHandler)}
	rabbitmqtest.DeleteQueueAtEnd(t, rmq.DeadLetterQueue)
	rabbitmqtest.DeleteExchangeAtEnd(t, rmq.DeadLetterExchange)

	// The operator's side: the exchange the tap publishes to, and a queue
	// bound to it for audit.*, declared before the node starts (the sink
	// does not create its destination).
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(auditQueue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(auditQueue, "audit.*", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(auditQueue, "tap-test", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}

	// The service: echoes the request body, on a work queue of its own
	// (not the shared demo.echo, which another package's node may serve).
	svcCfg := rmq
	svcCfg.ConnectionName += "-svc"
	svcBroker, err := rabbitmq.Dial(svcCfg)
	if err != nil {
		t.Fatal(err)
	}
	svcCtx, stopSvc := context.WithCancel(context.Background())
	svcDone, ready := make(chan error, 1), make(chan struct{})
	go func() {
		svc := &responder.Service{Subscriber: svcBroker, Publisher: svcBroker, Logger: slog.New(slog.DiscardHandler)}
		svcDone <- svc.Serve(svcCtx, work, func(_ context.Context, req responder.Request) (responder.Reply, error) {
			return responder.Reply{ContentType: req.ContentType, Body: req.Body}, nil
		}, brokers.WithReady(func() { close(ready) }))
	}()
	t.Cleanup(func() {
		stopSvc()
		select {
		case <-svcDone:
		case <-time.After(20 * time.Second):
			t.Error("the service's Serve did not return 20s after its context ended")
		}
		_ = svcBroker.Close()
	})
	select {
	case <-ready:
	case err := <-svcDone:
		t.Fatalf("the service's Serve returned before ready: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the service not ready within 20s")
	}

	cfg := testConfig()
	cfg.Demo.Enabled = false
	cfg.Node = id
	cfg.ReplyTo = id + ".reply"
	rabbitmqtest.DeleteQueueAtEnd(t, cfg.ReplyTo)
	cfg.Broker.Kind = "rabbitmq"
	cfg.Broker.RabbitMQ = rmq
	cfg.Broker.RabbitMQ.ConnectionName += "-gw"
	cfg.Taps.Sinks = []node.TapSinkConfig{{Name: "fanout", Kind: "broker", Exchange: exchange, RoutingKey: routingKey}}
	cfg.Routes = []node.RouteConfig{
		{Name: "audited", Method: "POST", Path: "/audited", Destination: work, Mode: "sync", Timeout: 10 * time.Second,
			Tap: &node.RouteTapConfig{Sinks: []string{"fanout"}}},
		{Name: "plain", Method: "POST", Path: "/plain", Destination: work, Mode: "sync", Timeout: 10 * time.Second},
	}
	n := start(t, cfg)

	sent := map[string]string{} // correlation id → body
	bodies := map[string]bool{}
	for i := range requests {
		body := fmt.Sprintf(`{"order":%d,"note":"tap via exchange"}`, i)
		reqID := fmt.Sprintf("req-%d", i)
		r, got := send(t, "POST", n.base+"/audited?n="+fmt.Sprint(i), []byte(body), map[string]string{
			"Authorization": "Bearer secret-" + reqID, "Content-Type": "text/plain", "X-Request-Id": reqID})
		if r.StatusCode != http.StatusOK || string(got) != body {
			t.Fatalf("POST /audited #%d: %d %s, want 200 and the body echoed", i, r.StatusCode, got)
		}
		cid := r.Header.Get("X-Correlation-Id")
		if cid == "" {
			t.Fatalf("POST /audited #%d: no X-Correlation-Id", i)
		}
		if _, dup := sent[cid]; dup {
			t.Fatalf("correlation id %s answered twice", cid)
		}
		sent[cid], bodies[body] = body, true
	}
	// An untapped route on the same node is not copied.
	if r, got := send(t, "POST", n.base+"/plain", []byte("untapped"), nil); r.StatusCode != http.StatusOK {
		t.Fatalf("POST /plain: %d %s", r.StatusCode, got)
	}

	// Consume the copies while the node runs, bounded.
	var msgs []amqp.Delivery
	deadline := time.After(30 * time.Second)
	for len(msgs) < requests {
		select {
		case d, ok := <-deliveries:
			if !ok {
				t.Fatalf("the consumer's channel closed after %d messages", len(msgs))
			}
			msgs = append(msgs, d)
		case <-deadline:
			t.Fatalf("%d tap messages on %s within 30s, want %d", len(msgs), auditQueue, requests)
		}
	}
	// Stopping the node flushes whatever its tap still holds; then no
	// message beyond the 20 may be in flight or waiting in the queue.
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	if err := ch.Cancel("tap-test", false); err != nil {
		t.Fatal(err)
	}
	extra := 0
	for drained := false; !drained; {
		select {
		case d, ok := <-deliveries:
			if !ok {
				drained = true
				continue
			}
			extra++
			t.Errorf("extra tap message: %s", d.Body)
		case <-time.After(10 * time.Second):
			t.Fatal("the consumer's channel not closed 10s after its cancel")
		}
	}
	if q, err := ch.QueueDeclarePassive(auditQueue, false, false, false, false, nil); err != nil || q.Messages != 0 {
		t.Errorf("%s after the node stopped: %d messages waiting (%v), want 0", auditQueue, q.Messages, err)
	}
	if extra != 0 {
		t.Errorf("%d messages beyond the %d tapped requests (the untapped route's?)", extra, requests)
	}

	seen := map[string]bool{}
	for _, d := range msgs {
		if d.Exchange != exchange || d.RoutingKey != routingKey {
			t.Errorf("message from exchange %q key %q, want %q %q", d.Exchange, d.RoutingKey, exchange, routingKey)
		}
		if d.ContentType != "application/json" {
			t.Errorf("message content type %q, want application/json", d.ContentType)
		}
		if v, _ := d.Headers[publish.Header].(string); v != "exchange" {
			t.Errorf("message header %s = %v, want exchange (headers %v)", publish.Header, d.Headers[publish.Header], d.Headers)
		}
		var x tap.Exchange
		if err := json.Unmarshal(d.Body, &x); err != nil {
			t.Errorf("message %s: %v", d.Body, err)
			continue
		}
		body, ok := sent[x.CorrelationID]
		if !ok {
			t.Errorf("exchange of correlation id %q, which no response carried", x.CorrelationID)
			continue
		}
		if seen[x.CorrelationID] {
			t.Errorf("exchange of %s copied twice", x.CorrelationID)
		}
		seen[x.CorrelationID] = true
		// The key travels in x-syncgate-key (AMQP has no key property).
		if k, _ := d.Headers["x-syncgate-key"].(string); k != x.CorrelationID {
			t.Errorf("message key %v, want the correlation id %s", d.Headers["x-syncgate-key"], x.CorrelationID)
		}
		if x.Route != "audited" || x.Node != id || x.Status != http.StatusOK || x.Outcome != "reply" ||
			x.Request.Method != "POST" || x.Request.Path != "/audited" || !strings.HasPrefix(x.Request.Query, "n=") ||
			string(x.Request.Body) != body || x.Request.BodyTruncated || x.Reply == nil || string(x.Reply.Body) != body ||
			x.Time.IsZero() || x.DurationMS <= 0 {
			t.Errorf("exchange %s: %+v (reply %+v), want route audited, 200 reply, body %s", x.CorrelationID, x, x.Reply, body)
		}
		if !bodies[string(x.Request.Body)] {
			t.Errorf("exchange %s: request body %q is none of those sent", x.CorrelationID, x.Request.Body)
		}
		if x.Request.Query != "" && x.RequestID != "req-"+strings.TrimPrefix(x.Request.Query, "n=") {
			t.Errorf("exchange %s: request id %q for query %q", x.CorrelationID, x.RequestID, x.Request.Query)
		}
		for k, v := range x.Request.Header {
			if strings.EqualFold(k, "Authorization") || strings.Contains(strings.Join(v, ","), "secret-") {
				t.Errorf("exchange %s: header %s: %v copied, Authorization must be redacted", x.CorrelationID, k, v)
			}
		}
		if v := x.Request.Header["Content-Type"]; len(v) != 1 || v[0] != "text/plain" {
			t.Errorf("exchange %s: request headers %v, want Content-Type text/plain kept", x.CorrelationID, x.Request.Header)
		}
	}
	if len(seen) != requests {
		t.Errorf("%d distinct correlation ids among the copies, want %d", len(seen), requests)
	}
}
