package node_test

import (
	"strings"
	"testing"

	"github.com/syncgate/syncgate/api/middleware"
)

// The trace context goes to the service in the envelope, comes back on the
// reply (the responder SDK copies it) and is returned on the response.
func TestTraceContextRoundTrip(t *testing.T) {
	n := start(t, testConfig())
	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	resp, _ := send(t, "POST", n.base+"/demo/echo", []byte("x"), map[string]string{"Traceparent": caller, "Tracestate": "vendor=1"})
	tc, ok := middleware.ParseTraceParent(resp.Header.Get("Traceparent"))
	if resp.StatusCode != 200 || !ok || tc.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || tc.SpanID == "00f067aa0ba902b7" {
		t.Fatalf("%d, traceparent %q: want the caller's trace, the gateway's span", resp.StatusCode, resp.Header.Get("Traceparent"))
	}
	if resp.Header.Get("Tracestate") != "vendor=1" {
		t.Errorf("tracestate %q", resp.Header.Get("Tracestate"))
	}
	// No trace context: one is started, and each request gets its own.
	r1, _ := send(t, "POST", n.base+"/demo/echo", []byte("x"), nil)
	r2, _ := send(t, "POST", n.base+"/demo/echo", []byte("x"), nil)
	t1, ok1 := middleware.ParseTraceParent(r1.Header.Get("Traceparent"))
	t2, ok2 := middleware.ParseTraceParent(r2.Header.Get("Traceparent"))
	if !ok1 || !ok2 || t1.TraceID == t2.TraceID || strings.Contains(caller, t1.TraceID) {
		t.Errorf("generated traces %q %q", r1.Header.Get("Traceparent"), r2.Header.Get("Traceparent"))
	}
}
