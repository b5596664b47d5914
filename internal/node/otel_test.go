package node_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/kafka"
	"github.com/syncgate/syncgate/brokers/rabbitmq"
	"github.com/syncgate/syncgate/brokers/rabbitmq/rabbitmqtest"
	"github.com/syncgate/syncgate/brokers/responder"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/telemetry"
	"github.com/syncgate/syncgate/internal/testenv"
)

// newTracing returns a recording Tracing whose spans go to an in-memory
// exporter at once.
func newTracing(t *testing.T) (*telemetry.Tracing, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tr, err := telemetry.WithExporter(t.Context(), exp, sdktrace.WithSyncer(exp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return tr, exp
}

// startTraced runs a node of cfg whose spans go to an in-memory exporter.
func startTraced(t *testing.T, cfg node.Config) (*running, *tracetest.InMemoryExporter) {
	t.Helper()
	tr, exp := newTracing(t)
	return startWith(t, cfg, tr), exp
}

func startWith(t *testing.T, cfg node.Config, tr *telemetry.Tracing) *running {
	t.Helper()
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := node.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), node.WithTracing(tr))
	if err != nil {
		t.Fatal(err)
	}
	return run(t, n)
}

// spansOf returns the ended spans of trace id, by name.
func spansOf(exp *tracetest.InMemoryExporter, id trace.TraceID) map[string]tracetest.SpanStub {
	out := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID() == id {
			out[s.Name] = s
		}
	}
	return out
}

// traceService serves dest on b with the responder SDK, echoing, its
// spans traced with tr, until the test ends. tenant returns the baggage
// member tenant of the last request.
func traceService(t *testing.T, b interface {
	responder.Subscriber
	responder.Publisher
}, dest string, tr *telemetry.Tracing) (tenant func() string) {
	var last atomic.Value
	last.Store("")
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		svc := &responder.Service{Subscriber: b, Publisher: b, Logger: slog.New(slog.DiscardHandler), Tracer: tr.Tracer, Propagator: tr.Propagator}
		done <- svc.Serve(ctx, dest, func(ctx context.Context, req responder.Request) (responder.Reply, error) {
			if m := baggage.FromContext(ctx).Member("tenant"); m.Value() != "" {
				last.Store(m.Value())
			}
			return responder.Reply{ContentType: req.ContentType, Body: req.Body}, nil
		}, brokers.WithReady(func() { close(ready) }))
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("service not ready within 30s")
	}
	return func() string { return last.Load().(string) }
}

// The span tree of a request, on each broker: memory (the embedded demo
// service), Kafka (kfake) and RabbitMQ (a responder service on a queue of
// its own).
func TestSpansOfARequest(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		n, exp := startTraced(t, testConfig())
		checkSpanTree(t, n, exp, "/demo/echo", "demo.echo")
	})
	t.Run("kafka", func(t *testing.T) {
		port := testenv.FreePort(t)
		kf, err := kfake.NewCluster(kfake.Ports(port), kfake.NumBrokers(1), kfake.SeedTopics(1, "otel.echo"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(kf.Close)
		kcfg := kafka.Config{Brokers: []string{"127.0.0.1:" + strconv.Itoa(port)}, Logger: slog.New(slog.DiscardHandler)}
		svcBroker, err := kafka.New(kcfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = svcBroker.Close() })
		tr, exp := newTracing(t)
		tenant := traceService(t, svcBroker, "otel.echo", tr)
		cfg := testConfig()
		cfg.Demo.Enabled = false
		cfg.Node = "otel-" + strconv.Itoa(port)
		cfg.Broker.Kind, cfg.Broker.Kafka = "kafka", kcfg
		cfg.Routes = []node.RouteConfig{{Name: "otel", Method: "POST", Path: "/otel", Destination: "otel.echo", Mode: "sync", Timeout: 10 * time.Second}}
		checkSpanTree(t, startWith(t, cfg, tr), exp, "/otel", "otel.echo")
		if got := tenant(); got != "acme" {
			t.Errorf("the service saw baggage tenant=%q, want the caller's acme", got)
		}
	})
	t.Run("rabbitmq", func(t *testing.T) {
		rabbitmqtest.Shared(t)
		testenv.RequireRabbitMQ(t)
		queue := rabbitmqtest.Unique("sgtest.otel")
		rabbitmqtest.DeleteQueueAtEnd(t, queue)
		svcBroker, err := rabbitmq.Dial(rabbitmq.Config{URL: testenv.RabbitMQURL(), ConnectionName: queue, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = svcBroker.Close() })
		tr, exp := newTracing(t)
		tenant := traceService(t, svcBroker, queue, tr)
		cfg := testConfig()
		cfg.Demo.Enabled = false
		cfg.Node = rabbitmqtest.Unique("otel")
		cfg.ReplyTo = ""
		cfg.Broker.Kind, cfg.Broker.RabbitMQ.URL = "rabbitmq", testenv.RabbitMQURL()
		cfg.Routes = []node.RouteConfig{{Name: "otel", Method: "POST", Path: "/otel", Destination: queue, Mode: "sync", Timeout: 10 * time.Second}}
		checkSpanTree(t, startWith(t, cfg, tr), exp, "/otel", queue)
		if got := tenant(); got != "acme" {
			t.Errorf("the service saw baggage tenant=%q, want the caller's acme", got)
		}
	})
}

// A request over the memory broker records the span tree a trace viewer
// shows: HTTP → send → service → reply → HTTP. The server span (a child
// of the caller's span, named after the route), the send span under it,
// the demo service's process span under that (the responder SDK continues
// the context the message carried), and the receive span under the server
// span, linked to the process span whose context the reply carried back.
func checkSpanTree(t *testing.T, n *running, exp *tracetest.InMemoryExporter, path, dest string) {
	t.Helper()
	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	resp, body := send(t, "POST", n.base+path, []byte("x"), map[string]string{"Traceparent": caller, "Baggage": "tenant=acme"})
	if resp.StatusCode != http.StatusOK || string(body) != "x" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	id, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	var spans map[string]tracetest.SpanStub
	testenv.Eventually(t, 5*time.Second, "four spans ended", func() bool {
		spans = spansOf(exp, id)
		return len(spans) >= 4
	})
	srv, ok := spans["POST "+path]
	if !ok {
		t.Fatalf("no server span named after the route: %v", names(spans))
	}
	if srv.SpanKind != trace.SpanKindServer || srv.Parent.SpanID().String() != "00f067aa0ba902b7" || !srv.Parent.IsRemote() {
		t.Errorf("server span: kind %v, parent %v", srv.SpanKind, srv.Parent)
	}
	snd, ok := spans["send "+dest]
	if !ok || snd.SpanKind != trace.SpanKindProducer || snd.Parent.SpanID() != srv.SpanContext.SpanID() {
		t.Fatalf("send span %+v, want a producer span under the server span (spans %v)", snd.Parent, names(spans))
	}
	// The service (responder SDK with a tracer) continues
	// the trace under the send span, and its reply carries its span.
	prc, ok := spans["process request"]
	if !ok || prc.SpanKind != trace.SpanKindConsumer || prc.Parent.SpanID() != snd.SpanContext.SpanID() {
		t.Fatalf("process span %+v, want a consumer span under the send span (spans %v)", prc.Parent, names(spans))
	}
	rcv, ok := spans["receive reply"]
	if !ok || rcv.SpanKind != trace.SpanKindConsumer || rcv.Parent.SpanID() != srv.SpanContext.SpanID() {
		t.Fatalf("receive span %+v, want a consumer span under the server span", rcv.Parent)
	}
	if len(rcv.Links) != 1 || rcv.Links[0].SpanContext.SpanID() != prc.SpanContext.SpanID() {
		t.Errorf("receive span links %+v, want the reply's span context (the process span's)", rcv.Links)
	}
	// The response carries the reply's trace context (README).
	if got := resp.Header.Get("Traceparent"); got != "00-4bf92f3577b34da6a3ce929d0e0e4736-"+prc.SpanContext.SpanID().String()+"-01" {
		t.Errorf("response traceparent %s, process span %s", got, prc.SpanContext.SpanID())
	}
	attrs := map[string]string{}
	for _, a := range srv.Attributes {
		attrs[string(a.Key)] = a.Value.String()
	}
	if attrs["http.route"] != path || attrs["http.response.status_code"] != "200" || attrs["syncgate.correlation_id"] != resp.Header.Get("X-Correlation-Id") {
		t.Errorf("server span attributes %v (correlation id %s)", attrs, resp.Header.Get("X-Correlation-Id"))
	}

	// A request without trace context starts a sampled trace.
	resp, _ = send(t, "POST", n.base+path, []byte("y"), nil)
	sc := trace.SpanContextFromContext(telemetry.Propagator().Extract(context.Background(), propagationHeader(resp.Header)))
	if !sc.IsValid() || !sc.IsSampled() {
		t.Fatalf("a new trace: traceparent %q, want a sampled one", resp.Header.Get("Traceparent"))
	}
	testenv.Eventually(t, 5*time.Second, "the new trace's spans", func() bool { return len(spansOf(exp, sc.TraceID())) >= 3 })
}

// A poll's server span, in the poller's trace, links to the trace of the
// request it polls.
func TestPollLinksToTheRequestTrace(t *testing.T) {
	n, exp := startTraced(t, testConfig())
	const caller = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	resp, _ := send(t, "PUT", n.base+"/t/async/1", []byte("x"), map[string]string{"Traceparent": caller})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	var polled *http.Response
	testenv.Eventually(t, 5*time.Second, "the poll answers 200", func() bool {
		polled, _ = send(t, "GET", n.base+loc, nil, nil)
		return polled.StatusCode == http.StatusOK
	})
	sc := trace.SpanContextFromContext(telemetry.Propagator().Extract(context.Background(), propagationHeader(polled.Header)))
	orig, _ := trace.TraceIDFromHex("5bf92f3577b34da6a3ce929d0e0e4736")
	// The poll's response carries the reply's traceparent (the request's
	// trace); its server span is in a trace of its own.
	if sc.TraceID() != orig {
		t.Fatalf("poll response traceparent %q, want the request's trace", polled.Header.Get("Traceparent"))
	}
	testenv.Eventually(t, 5*time.Second, "a poll span linked to the request's trace", func() bool {
		for _, s := range exp.GetSpans() {
			if s.Name == "GET /v1/requests/{id}" && s.SpanContext.TraceID() != orig {
				for _, l := range s.Links {
					if l.SpanContext.TraceID() == orig {
						return true
					}
				}
			}
		}
		return false
	})
}

func names(m map[string]tracetest.SpanStub) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func propagationHeader(h http.Header) propagation.HeaderCarrier { return propagation.HeaderCarrier(h) }
