package telemetry

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// propagatingTracer is the tracer when nothing is exported: its spans
// record nothing (they are the API's non-recording spans) but carry a
// span context of their own, the caller's trace id and flags with a new
// span id, or a new trace sampled by sampleRoot. So the trace continues
// through the gateway to the services, with flags the configured sampler
// chose rather than silently unsampled, at the cost of a few random
// numbers per span.
type propagatingTracer struct {
	noop.Tracer
	sampleRoot func(trace.TraceID) bool
}

func newPropagatingTracer(sampleRoot func(trace.TraceID) bool) *propagatingTracer {
	return &propagatingTracer{sampleRoot: sampleRoot}
}

func (t *propagatingTracer) Start(ctx context.Context, _ string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	var parent trace.SpanContext
	if c := trace.NewSpanStartConfig(opts...); !c.NewRoot() {
		parent = trace.SpanContextFromContext(ctx)
	}
	cfg := trace.SpanContextConfig{SpanID: newSpanID()}
	if parent.IsValid() {
		cfg.TraceID, cfg.TraceFlags, cfg.TraceState = parent.TraceID(), parent.TraceFlags(), parent.TraceState()
	} else {
		cfg.TraceID = newTraceID()
		if t.sampleRoot(cfg.TraceID) {
			cfg.TraceFlags = trace.FlagsSampled
		}
	}
	ctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(cfg))
	return ctx, trace.SpanFromContext(ctx)
}

// Trace and span ids need to be unique, not secret: math/rand/v2's
// per-thread generator is enough (the SDK's default is the same kind).
func newTraceID() trace.TraceID {
	var id trace.TraceID
	for !id.IsValid() {
		binary.NativeEndian.PutUint64(id[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

func newSpanID() trace.SpanID {
	var id trace.SpanID
	for !id.IsValid() {
		binary.NativeEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}

// rootSampler decides, as OTEL_TRACES_SAMPLER would, whether a trace the
// gateway starts is sampled: always_on and parentbased_always_on (the
// default) sample it, always_off and parentbased_always_off do not, and
// [parentbased_]traceidratio samples the ratio OTEL_TRACES_SAMPLER_ARG
// (default 1) with the SDK's own ratio sampler.
func rootSampler(getenv func(string) string) func(trace.TraceID) bool {
	name := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")))
	switch name {
	case "always_off", "parentbased_always_off":
		return func(trace.TraceID) bool { return false }
	case "traceidratio", "parentbased_traceidratio":
		ratio := 1.0
		if f, err := strconv.ParseFloat(getenv("OTEL_TRACES_SAMPLER_ARG"), 64); err == nil && f >= 0 && f <= 1 {
			ratio = f
		}
		s := sdktrace.TraceIDRatioBased(ratio)
		return func(id trace.TraceID) bool {
			return s.ShouldSample(sdktrace.SamplingParameters{TraceID: id}).Decision == sdktrace.RecordAndSample
		}
	}
	return func(trace.TraceID) bool { return true }
}
