package instrument_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/gateway/instrument"
	"github.com/syncgate/syncgate/internal/telemetry"
)

type capture struct{ m brokers.Message }

func (c *capture) Publish(_ context.Context, _ string, m brokers.Message) error { c.m = m; return nil }
func (c *capture) Close() error                                                 { return nil }

// With tracing off, a publish starts no span: the message keeps the
// envelope's traceparent (the server span's) and gets the caller's baggage.
func TestTracedPublisherOff(t *testing.T) {
	tr := telemetry.Disabled()
	var c capture
	p := instrument.TracedPublisher(&c, tr.Tracer, tr.Propagator, "memory", tr.Recording())
	ctx, _ := tr.Tracer.Start(context.Background(), "server")
	m, _ := baggage.NewMember("tenant", "acme")
	b, _ := baggage.New(m)
	ctx = baggage.ContextWithBaggage(ctx, b)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if err := p.Publish(ctx, "d", brokers.Message{Headers: map[string]string{"traceparent": tp}}); err != nil {
		t.Fatal(err)
	}
	if c.m.Headers["traceparent"] != tp || c.m.Headers["baggage"] != "tenant=acme" {
		t.Fatalf("headers %v: want the envelope's traceparent and the baggage", c.m.Headers)
	}
	if trace.SpanFromContext(ctx).IsRecording() {
		t.Fatal("a disabled tracer recorded")
	}
}
