package middleware

import (
	"context"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// W3C Trace Context header names.
const (
	HeaderTraceParent = "Traceparent"
	HeaderTraceState  = "Tracestate"
)

// TraceContext is the W3C trace context of one request as the gateway
// forwards it: the caller's trace id (or a new one), a new span id for the
// gateway's hop, the caller's flags, and the caller's tracestate when valid.
type TraceContext struct {
	TraceID string // 32 lower-case hex digits
	SpanID  string // 16 lower-case hex digits: the gateway's span
	Flags   string // 2 hex digits
	State   string
}

// TraceParent formats the traceparent header (version 00).
func (tc TraceContext) TraceParent() string {
	if tc.TraceID == "" {
		return ""
	}
	return "00-" + tc.TraceID + "-" + tc.SpanID + "-" + tc.Flags
}

// Tracing is WithInfo with the request's server span: it starts the span
// with tracer, as a child of the caller's trace context when prop extracts
// a valid one (W3C traceparent, tracestate and baggage; an invalid
// traceparent is replaced, as the W3C recommendation says), puts a fresh
// Info and the span in the request's context (one copy of the request for
// both), records the span's context in Info.Trace and returns its
// traceparent on the response (a reply's own traceparent, set later by the
// handler, wins). The span is named after the route and given its
// attributes when it ends, only when it records. It is the outermost
// middleware, in place of WithInfo.
func Tracing(tracer trace.Tracer, prop propagation.TextMapPropagator) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info := &Info{Start: time.Now()}
			info.rec = recorder{ResponseWriter: w, info: info}
			span, r := startSpan(tracer, prop, info, r)
			next.ServeHTTP(&info.rec, r)
			if span.IsRecording() {
				endSpan(span, r)
			}
			span.End()
		})
	}
}

// startSpan starts the server span and records its context. Out of line:
// its frame is gone before the request waits, so it costs nothing per
// waiting request (issue 17).
//
//go:noinline
func startSpan(tracer trace.Tracer, prop propagation.TextMapPropagator, info *Info, r *http.Request) (trace.Span, *http.Request) {
	ctx := context.WithValue(r.Context(), infoKey{}, info)
	// Canonical keys (net/http's): extract only what a caller sent.
	if len(r.Header[HeaderTraceParent]) > 0 || len(r.Header["Baggage"]) > 0 {
		ctx = prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	ctx, span := tracer.Start(ctx, r.Method, serverSpan...)
	tc, tp := traceContextOf(span.SpanContext())
	info.Trace, info.traced, info.traceParent = tc, tc, tp
	h := info.rec.ResponseWriter.Header()
	h.Set(HeaderTraceParent, tp)
	if tc.State != "" {
		h.Set(HeaderTraceState, tc.State)
	}
	return span, r.WithContext(ctx)
}

var serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

// traceContextOf formats sc as a traceparent with one allocation, its ids
// sharing the string.
func traceContextOf(sc trace.SpanContext) (TraceContext, string) {
	var b [55]byte
	b[0], b[1], b[2], b[35], b[52] = '0', '0', '-', '-', '-'
	tid, sid := sc.TraceID(), sc.SpanID()
	hex.Encode(b[3:35], tid[:])
	hex.Encode(b[36:52], sid[:])
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags())})
	tp := string(b[:])
	tc := TraceContext{TraceID: tp[3:35], SpanID: tp[36:52], Flags: tp[53:55]}
	if ts := sc.TraceState(); ts.Len() > 0 {
		tc.State = ts.String()
	}
	return tc, tp
}

// endSpan names a recording span after the route it took and sets the
// HTTP attributes (OpenTelemetry's HTTP server conventions).
func endSpan(span trace.Span, r *http.Request) {
	route := ""
	if rc := chi.RouteContext(r.Context()); rc != nil {
		route = rc.RoutePattern()
	}
	name := r.Method
	if route != "" {
		name += " " + route
	}
	span.SetName(name)
	attrs := []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String(r.Method),
		semconv.URLPath(r.URL.Path),
	}
	if route != "" {
		attrs = append(attrs, semconv.HTTPRoute(route))
	}
	if info := InfoFrom(r.Context()); info != nil {
		status := statusOf(r, info)
		attrs = append(attrs, semconv.HTTPResponseStatusCode(status))
		if info.CorrelationID != "" {
			attrs = append(attrs, attribute.String("syncgate.correlation_id", info.CorrelationID))
		}
		if info.Route != "" {
			attrs = append(attrs, attribute.String("syncgate.route", info.Route))
		}
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	}
	span.SetAttributes(attrs...)
}

// ParseTraceParent validates a traceparent header value
// (version-traceid-parentid-flags). Versions above 00 are read as 00, as the
// specification asks; version ff, all-zero ids and upper-case hex are invalid.
func ParseTraceParent(s string) (TraceContext, bool) {
	if len(s) < 55 || (len(s) > 55 && (s[:2] == "00" || s[55] != '-')) {
		return TraceContext{}, false
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return TraceContext{}, false
	}
	version, traceID, parentID, flags := s[:2], s[3:35], s[36:52], s[53:55]
	if !lowerHex(version) || version == "ff" || !lowerHex(traceID) || !lowerHex(parentID) || !lowerHex(flags) {
		return TraceContext{}, false
	}
	if allZero(traceID) || allZero(parentID) {
		return TraceContext{}, false
	}
	return TraceContext{TraceID: traceID, SpanID: parentID, Flags: flags}, true
}

// ValidTraceState checks a tracestate value: at most 512 bytes and 32
// list members, each key=value with the characters the specification allows.
func ValidTraceState(s string) bool {
	if s == "" || len(s) > 512 {
		return false
	}
	members := 0
	for m := range strings.SplitSeq(s, ",") {
		m = strings.Trim(m, " \t")
		if m == "" {
			continue // empty list members are allowed
		}
		members++
		k, v, ok := strings.Cut(m, "=")
		if !ok || !validStateKey(k) || !validStateValue(v) {
			return false
		}
	}
	return members > 0 && members <= 32
}

func validStateKey(k string) bool {
	if k == "" || len(k) > 256 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '*' || c == '/' || c == '@') {
			return false
		}
	}
	return true
}

func validStateValue(v string) bool {
	if v == "" || len(v) > 256 || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e || c == ',' || c == '=' {
			return false
		}
	}
	return true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool { return strings.Trim(s, "0") == "" }
