package node_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/telemetry"
)

// BenchmarkTracing is BenchmarkMemoryPathAllocs with tracing off (the
// default: trace context propagated, nothing recorded) and on (every
// request sampled, its four spans (server, send, the demo service's
// process, receive) exported through the SDK's batch processor to an
// in-memory exporter), in one run, with the caller's traceparent: the cost
// of recording a trace per request.
func BenchmarkTracing(b *testing.B) {
	for _, mode := range []string{"off", "on"} {
		b.Run(mode, func(b *testing.B) {
			tr := telemetry.Disabled()
			var exp *tracetest.InMemoryExporter
			if mode == "on" {
				exp = tracetest.NewInMemoryExporter()
				var err error
				if tr, err = telemetry.WithExporter(context.Background(), exp, sdktrace.WithBatcher(exp)); err != nil {
					b.Fatal(err)
				}
				defer tr.Shutdown(context.Background())
			}
			cfg := testConfig()
			cfg.SetDefaults()
			n, err := node.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), node.WithTracing(tr))
			if err != nil {
				b.Fatal(err)
			}
			h := run(b, n).Handler()
			payload := []byte(`{"order":42,"amount":"12.50"}`)
			body := bytes.NewReader(payload)
			req := httptest.NewRequest("POST", "/demo/echo", body)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				body.Reset(payload)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("%d %q", rec.Code, rec.Body)
				}
				if i++; exp != nil && i%4096 == 0 {
					exp.Reset() // bounded memory; the spans were exported
				}
			}
		})
	}
}
