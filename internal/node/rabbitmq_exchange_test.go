package node_test

import (
	"context"
	"io"
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
)

// A RabbitMQ route with exchange and routing_key publishes to the
// operator's topic exchange: the service's queue, bound for orders.eu.*,
// gets the request and its reply comes back as the HTTP response, along
// with the route's message key. A route whose exchange does not exist
// answers 503 broker-unavailable, and the node keeps serving the others.
func TestRabbitMQRouteExchange(t *testing.T) {
	rabbitmqtest.Shared(t)
	testenv.RequireRabbitMQ(t)
	url := testenv.RabbitMQURL()
	exchange, queue := rabbitmqtest.Unique("sgtest.orders"), rabbitmqtest.Unique("sgtest.orders.eu")
	rabbitmqtest.DeleteQueueAtEnd(t, queue)
	rabbitmqtest.DeleteExchangeAtEnd(t, exchange)

	// The service: its queue, which it declares, bound by the operator to
	// the exchange.
	svcBroker, err := rabbitmq.Dial(rabbitmq.Config{URL: url, ConnectionName: queue + " service", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	keys := make(chan string, 4)
	svcCtx, stopSvc := context.WithCancel(context.Background())
	svcDone := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		svc := &responder.Service{Subscriber: svcBroker, Publisher: svcBroker, Logger: slog.New(slog.DiscardHandler)}
		svcDone <- svc.Serve(svcCtx, queue, func(_ context.Context, req responder.Request) (responder.Reply, error) {
			keys <- req.Key
			return responder.Reply{ContentType: req.ContentType, Body: append([]byte("eu:"), req.Body...)}, nil
		}, brokers.WithReady(func() { close(ready) }))
	}()
	t.Cleanup(func() {
		stopSvc()
		<-svcDone
		_ = svcBroker.Close()
	})
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("service not ready within 20s")
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(queue, "orders.eu.*", exchange, false, nil); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig()
	cfg.Demo.Enabled = false
	cfg.Broker.Kind = "rabbitmq"
	cfg.Broker.RabbitMQ.URL = url
	cfg.Node = rabbitmqtest.Unique("exchange")
	cfg.ReplyTo = ""
	cfg.Routes = []node.RouteConfig{
		{Name: "order", Method: "PUT", Path: "/orders/{id}", Exchange: exchange,
			RoutingKey: "orders.eu.put", Key: "order-${params.id}", Mode: "sync", Timeout: 10 * time.Second},
		{Name: "lost", Method: "POST", Path: "/lost", Destination: "x", Exchange: rabbitmqtest.Unique("sgtest.none"), Mode: "sync", Timeout: 2 * time.Second},
	}
	n := start(t, cfg)
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, n.base+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do("PUT", "/orders/7", "hello"); code != http.StatusOK || body != "eu:hello" {
		t.Fatalf("PUT /orders/7: %d %s, want 200 eu:hello from the bound queue's service", code, body)
	}
	if k := <-keys; k != "order-7" {
		t.Errorf("the service saw key %q, want order-7", k)
	}
	if code, body := do("POST", "/lost", "x"); code != http.StatusServiceUnavailable || !strings.Contains(body, "broker-unavailable") {
		t.Fatalf("POST /lost (no such exchange): %d %s, want 503 broker-unavailable", code, body)
	}
	if code, body := do("PUT", "/orders/8", "again"); code != http.StatusOK || body != "eu:again" {
		t.Fatalf("PUT /orders/8 after the missing exchange: %d %s", code, body)
	}
}
