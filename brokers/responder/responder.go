package responder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
)

// Request is what the gateway forwarded: the original method, path, query,
// allow-listed headers, content type and body, and the authenticated
// caller (Principal, "" when anonymous).
type Request = envelope.Request

// Reply is what the service answers. Status 0 means 200. CorrelationID and
// trace context are filled in by the SDK.
type Reply = envelope.Reply

// Handler answers one request.
type Handler func(ctx context.Context, req Request) (Reply, error)

// Subscriber and Publisher are what the SDK needs of a backend.
type (
	Subscriber interface {
		Subscribe(ctx context.Context, source string, h brokers.Handler, opts ...brokers.SubscribeOption) error
	}
	Publisher interface {
		Publish(ctx context.Context, dest string, m brokers.Message) error
	}
)

// Service serves one Handler from one source.
type Service struct {
	Subscriber Subscriber
	Publisher  Publisher
	Logger     *slog.Logger // default slog.Default(); lines carry component responder
	// ReplyTimeout caps one attempt at publishing a reply (default 5 s).
	ReplyTimeout time.Duration
	// ReplyRetry bounds the retrying of a reply the broker cannot take yet
	// (brokers.ErrUnavailable) for a request without a deadline (default
	// DefaultReplyRetry); a request's deadline bounds it otherwise.
	ReplyRetry time.Duration
	// Tracer and Propagator, when both are set (e.g. the OpenTelemetry
	// SDK's tracer and W3C trace context + baggage), continue the
	// request's trace: each request is handled in a consumer span, a child
	// of the gateway's send span, in the handler's context, and the reply
	// carries that span's context unless the handler set its own. Without
	// them the reply carries the request's trace context unchanged.
	Tracer     trace.Tracer
	Propagator propagation.TextMapPropagator
}

// replyUntil is when retrying req's reply stops: its deadline, after which
// nobody waits for it.
func (s *Service) replyUntil(req Request) time.Time {
	if !req.Deadline.IsZero() {
		return req.Deadline
	}
	d := s.ReplyRetry
	if d <= 0 {
		d = DefaultReplyRetry
	}
	return time.Now().Add(d)
}

// Serve consumes source until ctx ends, answering every request with h.
// opts are passed to Subscribe (group, concurrency, readiness). A request
// the backend gives up on is answered by DeadLettered; a DeadLetter
// callback among opts is called after it.
func (s *Service) Serve(ctx context.Context, source string, h Handler, opts ...brokers.SubscribeOption) error {
	theirs := brokers.NewSubscribeConfig(opts...).DeadLetter
	opts = append(opts[:len(opts):len(opts)], brokers.WithDeadLetter(func(ctx context.Context, m brokers.Message, err error) {
		s.DeadLettered(ctx, m, err)
		theirs(ctx, m, err)
	}))
	return s.Subscriber.Subscribe(ctx, source, s.Handler(h), opts...)
}

// Handler adapts h to a brokers.Handler, for callers that manage their own
// subscription.
func (s *Service) Handler(h Handler) brokers.Handler {
	log := s.logger()
	return func(ctx context.Context, m brokers.Message) error {
		req, err := envelope.DecodeRequest(m)
		if err != nil {
			// Without a valid id nobody can be answered: drop, do not retry.
			log.WarnContext(ctx, "dropping invalid request", slog.Any("error", err))
			return nil
		}
		log := requestLog{log, req.CorrelationID}
		if req.ReplyTo == "" {
			log.Warn(ctx, "dropping request without reply-to")
			return nil
		}
		if !req.Deadline.IsZero() && !time.Now().Before(req.Deadline) {
			log.Info(ctx, "dropping expired request", slog.Time("deadline", req.Deadline))
			return nil
		}
		var span trace.Span
		if s.Tracer != nil && s.Propagator != nil {
			ctx, span = s.startSpan(ctx, m, req)
			defer span.End()
		}
		rep, ok := call(context.WithValue(ctx, progressKey{}, progressTo{s, &req}), log, h, req)
		if !ok {
			if err := ctx.Err(); err != nil {
				// The subscription is stopping: leave the message to be
				// redelivered to another consumer.
				return fmt.Errorf("responder: %w", err)
			}
			return nil // the deadline passed: nobody waits for this reply
		}
		rep.CorrelationID = req.CorrelationID
		if rep.TraceParent == "" {
			rep.TraceParent, rep.TraceState = req.TraceParent, req.TraceState
			if span != nil {
				c := propagation.MapCarrier{}
				propagation.TraceContext{}.Inject(ctx, c)
				rep.TraceParent, rep.TraceState = c[envelope.TraceParent], c[envelope.TraceState]
			}
		}
		if span != nil && span.IsRecording() {
			span.SetAttributes(attribute.Int("syncgate.reply.status", rep.StatusCode()))
		}
		err = s.publishReply(ctx, log, req.ReplyTo, rep.Message(), s.replyUntil(req))
		if errors.Is(err, errReplyExpired) {
			log.Warn(ctx, "dropping the reply: the broker was unavailable until the request's deadline",
				slog.Any("error", err))
			return nil
		}
		if errors.Is(err, errReplyNowhere) {
			// Handling the request again would not make its reply address
			// exist, and would repeat its side effects.
			log.Warn(ctx, "dropping the reply: the broker knows no such reply address (the gateway node that sent the request is gone)",
				slog.String("reply_to", req.ReplyTo), slog.Any("error", err))
			return nil
		}
		// Any other error makes the broker redeliver the request.
		return err
	}
}

// startSpan starts the consumer span of request req (message m): a child
// of the context the message carries.
func (s *Service) startSpan(ctx context.Context, m brokers.Message, req Request) (context.Context, trace.Span) {
	ctx = s.Propagator.Extract(ctx, propagation.MapCarrier(m.Headers))
	return s.Tracer.Start(ctx, "process request", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.message.conversation_id", req.CorrelationID),
		attribute.String("http.request.method", req.Method),
		attribute.String("url.path", req.Path),
	))
}

// call runs h. It reports false when h failed because its context ended
// (the request's deadline passed, or the subscription is stopping): then no
// reply is owed.
func call(ctx context.Context, log requestLog, h Handler, req Request) (rep Reply, ok bool) {
	if !req.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, req.Deadline)
		defer cancel()
	}
	defer func() {
		if p := recover(); p != nil {
			log.Error(ctx, "handler panicked", slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			rep, ok = errorReply(http500), true
		}
	}()
	rep, err := h(ctx, req)
	if err != nil {
		if se, isStatus := errors.AsType[*StatusError](err); isStatus {
			log.Info(ctx, "handler returned status error", slog.Int("status", se.Status), slog.Any("error", se.Err))
			return errorReply(se.Status), true
		}
		if ctx.Err() != nil {
			log.Info(ctx, "context ended while handling; no reply sent", slog.Any("error", err))
			return Reply{}, false
		}
		log.Error(ctx, "handler failed", slog.Any("error", err))
		return errorReply(http500), true
	}
	return rep, true
}

const http500 = 500

// StatusError lets a handler choose the HTTP status of its error reply
// (e.g. 400 for input it rejects). Other errors become 500.
type StatusError struct {
	Status int
	Err    error
}

func (e *StatusError) Error() string { return fmt.Sprintf("status %d: %v", e.Status, e.Err) }
func (e *StatusError) Unwrap() error { return e.Err }

// errorReply is an RFC 9457 problem without internal details.
func errorReply(status int) Reply {
	if status < 400 || status > 599 {
		status = http500
	}
	body := fmt.Appendf(nil, `{"type":"about:blank","status":%d,"title":"service error"}`, status)
	return Reply{Status: status, ContentType: "application/problem+json", Body: body}
}
