package instrument

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/gateway"
)

// TracedPublisher starts a producer span for every publish through next,
// a child of the span in the publish's context (the HTTP request's), and
// injects its context into the message's headers with prop (traceparent,
// tracestate, baggage), so that the service continues the trace from the
// publish. When that span does not record (tracing off, or an unsampled
// trace), no span is started: the message keeps the envelope's trace
// context (the server span's) and gets the caller's baggage. system is the broker (kafka, rabbitmq, memory) for the
// messaging.system attribute. Attributes are set only on a recording span.
//
// recording false says that no span ever records (tracing off): then no
// span is looked up either.
func TracedPublisher(next gateway.Publisher, tracer trace.Tracer, prop propagation.TextMapPropagator, system string, recording bool) gateway.Publisher {
	return &tracedPublisher{next: next, tracer: tracer, prop: prop, system: system, recording: recording}
}

type tracedPublisher struct {
	next      gateway.Publisher
	tracer    trace.Tracer
	prop      propagation.TextMapPropagator
	system    string
	recording bool
}

var producer = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)}

func (p *tracedPublisher) Publish(ctx context.Context, dest string, m brokers.Message) error {
	if m.Headers == nil {
		m.Headers = make(map[string]string, 3)
	}
	if !p.recording || !trace.SpanFromContext(ctx).IsRecording() {
		// Nothing is recorded: the message carries the server span's
		// context (the envelope's traceparent), and the caller's baggage.
		if baggage.FromContext(ctx).Len() > 0 {
			propagation.Baggage{}.Inject(ctx, propagation.MapCarrier(m.Headers))
		}
		return p.next.Publish(ctx, dest, m)
	}
	ctx, span := p.tracer.Start(ctx, "send", producer...)
	p.prop.Inject(ctx, propagation.MapCarrier(m.Headers))
	err := p.next.Publish(ctx, dest, m)
	if span.IsRecording() {
		span.SetName("send " + dest)
		span.SetAttributes(
			semconv.MessagingSystemKey.String(p.system),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingDestinationName(dest),
			semconv.MessagingMessageConversationID(m.Headers[envelope.CorrelationID]),
			semconv.MessagingMessageBodySize(len(m.Body)),
			attribute.String("syncgate.reply_to", m.Headers[envelope.ReplyTo]),
		)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "publish failed")
		}
	}
	span.End()
	return err
}
