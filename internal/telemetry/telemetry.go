// Package telemetry sets up OpenTelemetry tracing for a node from the
// standard OTEL_* environment variables: the tracer the HTTP server and
// the broker publishes start spans with, and the propagator (W3C trace
// context and baggage) that carries their context in HTTP and message
// headers.
//
// Exporting is opt-in. With no exporter configured nothing is recorded,
// and the tracer only propagates: it continues a caller's trace (or starts
// one, sampled as OTEL_TRACES_SAMPLER says) with a new span id per hop, at
// the cost of two random numbers, so that services and logs still
// correlate. An exporter is configured by OTEL_TRACES_EXPORTER (otlp,
// console or none) or, as most deployments do, by an OTLP endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
// protocol http/protobuf unless OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL says
// grpc). The exporters read their own OTEL_EXPORTER_OTLP_* settings
// (headers, TLS, timeout); the SDK reads OTEL_TRACES_SAMPLER[_ARG],
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; OTEL_SDK_DISABLED=true
// turns recording off.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName names the tracer of syncgate's spans.
const ScopeName = "github.com/syncgate/syncgate"

// Tracing is a node's tracer and propagator.
type Tracing struct {
	// Tracer starts the node's spans.
	Tracer trace.Tracer
	// Propagator injects and extracts trace context and baggage.
	Propagator propagation.TextMapPropagator
	// Exporter names what spans are exported to ("" when none are: the
	// tracer only propagates).
	Exporter string

	shutdown func(context.Context) error
}

// Shutdown flushes and stops the exporter (nil when none).
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// Recording reports whether spans are recorded and exported.
func (t *Tracing) Recording() bool { return t != nil && t.Exporter != "" }

// Propagator is W3C trace context plus baggage.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// Disabled returns a Tracing that records nothing and only propagates.
func Disabled() *Tracing {
	return &Tracing{Tracer: newPropagatingTracer(rootSampler(os.Getenv)), Propagator: Propagator()}
}

// FromEnv returns the Tracing the OTEL_* environment variables configure
// (see the package comment).
func FromEnv(ctx context.Context) (*Tracing, error) {
	return fromEnv(ctx, os.Getenv)
}

func fromEnv(ctx context.Context, getenv func(string) string) (*Tracing, error) {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return Disabled(), nil
	}
	kind := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")))
	if kind == "" && (getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "") {
		kind = "otlp"
	}
	var (
		exp  sdktrace.SpanExporter
		err  error
		name string
	)
	switch kind {
	case "", "none":
		return Disabled(), nil
	case "otlp":
		proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
		if proto == "" {
			proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
		}
		switch proto {
		case "", "http/protobuf":
			exp, err = otlptracehttp.New(ctx)
			name = "otlp (http/protobuf)"
		case "grpc":
			exp, err = otlptracegrpc.New(ctx)
			name = "otlp (grpc)"
		default:
			return nil, fmt.Errorf("telemetry: OTEL_EXPORTER_OTLP_PROTOCOL %q: want http/protobuf or grpc", proto)
		}
	case "console":
		exp, err = stdouttrace.New(stdouttrace.WithWriter(os.Stderr))
		name = "console"
	default:
		return nil, fmt.Errorf("telemetry: OTEL_TRACES_EXPORTER %q: want otlp, console or none", kind)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: %s exporter: %w", kind, err)
	}
	t, err := WithExporter(ctx, exp, sdktrace.WithBatcher(exp))
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, err
	}
	t.Exporter = name
	return t, nil
}

// WithExporter returns a recording Tracing whose spans go to exp through
// the given processors' options (sdktrace.WithBatcher(exp) in production,
// sdktrace.WithSyncer(exp) in tests), sampled as OTEL_TRACES_SAMPLER says.
func WithExporter(ctx context.Context, exp sdktrace.SpanExporter, opts ...sdktrace.TracerProviderOption) (*Tracing, error) {
	res, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName(serviceName())))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(append([]sdktrace.TracerProviderOption{sdktrace.WithResource(res)}, opts...)...)
	return &Tracing{Tracer: tp.Tracer(ScopeName), Propagator: Propagator(), Exporter: fmt.Sprintf("%T", exp), shutdown: tp.Shutdown}, nil
}

// serviceName is OTEL_SERVICE_NAME, else syncgate (resource.WithFromEnv
// applies OTEL_SERVICE_NAME over it).
func serviceName() string {
	if s := os.Getenv("OTEL_SERVICE_NAME"); s != "" {
		return s
	}
	return "syncgate"
}

// LogErrorsTo sends the SDK's errors (a failed export) to log at warn,
// instead of the standard logger's stderr lines. The SDK keeps one
// handler per process, so the node's New calls it once.
func LogErrorsTo(log *slog.Logger) {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing: the OpenTelemetry SDK failed", slog.String("component", "otel"), slog.Any("error", err))
	}))
}
