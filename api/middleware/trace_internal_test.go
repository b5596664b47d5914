package middleware

import "testing"

// TestInfoTraceParent: Info.TraceParent is the formatted Trace, also when
// Trace changed after the middleware formatted it.
func TestInfoTraceParent(t *testing.T) {
	tc := TraceContext{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", Flags: "01"}
	info := &Info{Trace: tc, traced: tc, traceParent: tc.TraceParent()}
	if got, want := info.TraceParent(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"; got != want {
		t.Errorf("TraceParent() = %q, want %q", got, want)
	}
	info.Trace.SpanID = "00f067aa0ba902b8"
	if got, want := info.TraceParent(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b8-01"; got != want {
		t.Errorf("after a change, TraceParent() = %q, want %q", got, want)
	}
	if got := (&Info{}).TraceParent(); got != "" {
		t.Errorf("without a trace, TraceParent() = %q, want none", got)
	}
}
