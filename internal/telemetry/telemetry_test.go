package telemetry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// Without an exporter nothing records, and the tracer still propagates:
// a caller's trace continues with a new span id and the caller's flags,
// and a trace it starts is sampled as OTEL_TRACES_SAMPLER says (never
// silently unsampled).
func TestDisabledPropagates(t *testing.T) {
	tr, err := fromEnv(context.Background(), env(nil))
	if err != nil || tr.Recording() {
		t.Fatalf("no OTEL_* variables: %+v, %v; want a Tracing that records nothing", tr, err)
	}
	ctx := tr.Propagator.Extract(context.Background(), propagation.MapCarrier{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "tracestate": "v=1"})
	_, span := tr.Tracer.Start(ctx, "x")
	sc := span.SpanContext()
	if span.IsRecording() || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() == "00f067aa0ba902b7" ||
		sc.IsSampled() || sc.TraceState().String() != "v=1" {
		t.Fatalf("child of an unsampled caller: %v recording=%v", sc, span.IsRecording())
	}
	for _, tc := range []struct {
		vars map[string]string
		want bool
	}{
		{nil, true},
		{map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_always_on"}, true},
		{map[string]string{"OTEL_TRACES_SAMPLER": "always_off"}, false},
		{map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, false},
		{map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"}, true},
	} {
		tr := &Tracing{Tracer: newPropagatingTracer(rootSampler(env(tc.vars))), Propagator: Propagator()}
		_, span := tr.Tracer.Start(context.Background(), "root")
		if sc := span.SpanContext(); !sc.IsValid() || sc.IsSampled() != tc.want {
			t.Errorf("%v: root %v, want sampled=%v", tc.vars, sc, tc.want)
		}
	}
	_, a := tr.Tracer.Start(context.Background(), "a")
	_, b := tr.Tracer.Start(context.Background(), "b")
	if a.SpanContext().TraceID() == b.SpanContext().TraceID() {
		t.Error("two roots share a trace id")
	}
	if _, s := tr.Tracer.Start(trace.ContextWithSpanContext(context.Background(), sc), "new", trace.WithNewRoot()); s.SpanContext().TraceID() == sc.TraceID() {
		t.Error("WithNewRoot kept the parent's trace")
	}
}

func TestFromEnvExporters(t *testing.T) {
	for _, tc := range []struct {
		vars map[string]string
		want string // exporter; "" none; "error"
	}{
		{map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "otlp (http/protobuf)"},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "otlp (grpc)"},
		{map[string]string{"OTEL_TRACES_EXPORTER": "console"}, "console"},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, ""},
		{map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, "error"},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "error"},
	} {
		tr, err := fromEnv(context.Background(), env(tc.vars))
		switch {
		case tc.want == "error":
			if err == nil {
				t.Errorf("%v: no error", tc.vars)
			}
			continue
		case err != nil:
			t.Errorf("%v: %v", tc.vars, err)
			continue
		}
		if tr.Exporter != tc.want || tr.Recording() != (tc.want != "") {
			t.Errorf("%v: exporter %q (recording %v), want %q", tc.vars, tr.Exporter, tr.Recording(), tc.want)
		}
		_ = tr.Shutdown(context.Background())
	}
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, spans reach an OTLP/HTTP receiver
// (here a test server standing in for a collector) by the time Shutdown
// has flushed them.
func TestOTLPHTTPExport(t *testing.T) {
	got := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- fmt.Sprintf("%s %s %s %d", r.Method, r.URL.Path, r.Header.Get("Content-Type"), len(body))
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	tr, err := FromEnv(context.Background())
	if err != nil || tr.Exporter != "otlp (http/protobuf)" {
		t.Fatalf("FromEnv: %+v, %v", tr, err)
	}
	_, span := tr.Tracer.Start(context.Background(), "x")
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case req := <-got:
		if !strings.HasPrefix(req, "POST /v1/traces application/x-protobuf ") || strings.HasSuffix(req, " 0") {
			t.Errorf("the receiver got %q", req)
		}
	default:
		t.Fatal("no export reached the receiver")
	}
}
