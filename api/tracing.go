package api

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/gateway"
)

// replySpanContext is the span context a reply carries (the service's
// span that answered), invalid when it carries none.
func (s *server) replySpanContext(rep envelope.Reply) trace.SpanContext {
	if rep.TraceParent == "" {
		return trace.SpanContext{}
	}
	carrier := propagation.MapCarrier{envelope.TraceParent: rep.TraceParent}
	if rep.TraceState != "" {
		carrier[envelope.TraceState] = rep.TraceState
	}
	return trace.SpanContextFromContext(s.prop.Extract(context.Background(), carrier))
}

// traceReply records, under the request's server span, a consumer span
// for the reply being handed to this request at out.Replied, linked to
// the service's span that sent it: the trace reads HTTP → send → service
// → reply → HTTP. Only when the server span records.
func (s *server) traceReply(ctx context.Context, out *gateway.Outcome) {
	if !s.recording || out.Replied.IsZero() || !trace.SpanFromContext(ctx).IsRecording() {
		return
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(out.Replied),
		trace.WithAttributes(
			semconv.MessagingOperationTypeReceive,
			semconv.MessagingMessageConversationID(out.ID),
			attribute.Int("syncgate.reply.status", out.Reply.StatusCode()),
		)}
	if sc := s.replySpanContext(out.Reply); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	_, span := s.tracer.Start(ctx, "receive reply", opts...)
	span.End(trace.WithTimestamp(out.Replied))
}

// linkPolledReply links a poll's server span to the trace of the request
// it polls, through the span context its stored reply carries.
func (s *server) linkPolledReply(ctx context.Context, rep envelope.Reply) {
	if !s.recording {
		return
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	if sc := s.replySpanContext(rep); sc.IsValid() {
		span.AddLink(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.String("syncgate.link", "polled request")}})
	}
}
