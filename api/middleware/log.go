package middleware

import (
	"context"
	"log/slog"
)

// ContextHandler wraps a slog.Handler so that every record logged with a
// request's context carries correlation_id, route and trace_id (and
// request_id when the caller sent one): code that logs about a request needs
// only its ctx. The node's logger adds node itself (slog.Logger.With).
func ContextHandler(h slog.Handler) slog.Handler { return contextHandler{h} }

type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, rec slog.Record) error {
	var attrs [4]slog.Attr // one AddAttrs: the record grows once
	n := 0
	requestID := ""
	if info := InfoFrom(ctx); info != nil {
		requestID = info.RequestID
		if info.CorrelationID != "" {
			attrs[n] = slog.String("correlation_id", info.CorrelationID)
			n++
		}
		if info.Route != "" {
			attrs[n] = slog.String("route", info.Route)
			n++
		}
		if info.Trace.TraceID != "" {
			attrs[n] = slog.String("trace_id", info.Trace.TraceID)
			n++
		}
	}
	if requestID == "" {
		requestID = GetRequestID(ctx) // RequestID used without WithInfo
	}
	if requestID != "" {
		attrs[n] = slog.String("request_id", requestID)
		n++
	}
	if n > 0 {
		rec.AddAttrs(attrs[:n]...)
	}
	return h.Handler.Handle(ctx, rec)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}
