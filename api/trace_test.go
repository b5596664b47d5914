package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/api/middleware"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/gateway"
)

const callerTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestTraceContext(t *testing.T) {
	var sent envelope.Request
	var replyTrace string
	h := newHandler(t, &stub{do: func(_ context.Context, req *gateway.Request) (gateway.Outcome, error) {
		sent = req.Message
		return gateway.Outcome{ID: req.ID, Reply: envelope.Reply{TraceParent: replyTrace, TraceState: "svc=1"}}, nil
	}}, nil)

	t.Run("accepted and carried", func(t *testing.T) {
		rec := serve(h, "POST", "/r", "x", map[string]string{"Traceparent": callerTrace, "Tracestate": "vendor=a,other=b"})
		tc, ok := middleware.ParseTraceParent(sent.TraceParent)
		if !ok || tc.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || tc.Flags != "01" || tc.SpanID == "00f067aa0ba902b7" {
			t.Fatalf("forwarded traceparent %q: want the caller's trace with the gateway's span", sent.TraceParent)
		}
		if sent.TraceState != "vendor=a,other=b" {
			t.Errorf("forwarded tracestate %q", sent.TraceState)
		}
		if got := rec.Header().Get("Traceparent"); got != sent.TraceParent {
			t.Errorf("response traceparent %q, want %q", got, sent.TraceParent)
		}
	})
	t.Run("invalid is replaced", func(t *testing.T) {
		for _, bad := range []string{
			"garbage",
			"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
			"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
			"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			callerTrace + "-extra",
		} {
			rec := serve(h, "POST", "/r", "x", map[string]string{"Traceparent": bad, "Tracestate": "a=b"})
			tc, ok := middleware.ParseTraceParent(sent.TraceParent)
			if !ok || strings.Contains(bad, tc.TraceID) || sent.TraceState != "" {
				t.Errorf("%q: forwarded %q %q, want a new trace without state", bad, sent.TraceParent, sent.TraceState)
			}
			if rec.Header().Get("Traceparent") != sent.TraceParent {
				t.Errorf("%q: response traceparent %q", bad, rec.Header().Get("Traceparent"))
			}
		}
	})
	t.Run("future version is read as 00", func(t *testing.T) {
		serve(h, "POST", "/r", "x", map[string]string{"Traceparent": "01" + callerTrace[2:] + "-what-ever"})
		if tc, _ := middleware.ParseTraceParent(sent.TraceParent); tc.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("forwarded %q", sent.TraceParent)
		}
	})
	t.Run("the reply's trace context wins", func(t *testing.T) {
		replyTrace = "00-11111111111111111111111111111111-2222222222222222-01"
		rec := serve(h, "POST", "/r", "x", map[string]string{"Traceparent": callerTrace, "X-Request-Id": "req-7"})
		if rec.Header().Get("Traceparent") != replyTrace || rec.Header().Get("Tracestate") != "svc=1" {
			t.Errorf("response %v", rec.Header())
		}
	})
}

func TestValidTraceState(t *testing.T) {
	for s, want := range map[string]bool{
		"a=b": true, "a=b, c=d": true, "tenant@sys=x": true, "a=b,,c=d": true,
		"": false, "A=b": false, "a": false, "a=b=c": false, "a=b\x01": false,
		strings.Repeat("a=b,", 33) + "z=y": false, strings.Repeat("x", 513): false,
	} {
		if got := middleware.ValidTraceState(s); got != want {
			t.Errorf("ValidTraceState(%q) = %v", s, got)
		}
	}
}

// Every line about a request carries correlation_id, route, trace_id and
// the caller's request_id, the access line too; the access log is at info.
func TestLogsCarryRequestAttributes(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(middleware.ContextHandler(slog.NewJSONHandler(&buf, nil))).With("node", "n1")
	h := newHandler(t, &stub{do: func(ctx context.Context, req *gateway.Request) (gateway.Outcome, error) {
		slog.New(middleware.ContextHandler(slog.NewJSONHandler(&buf, nil))).InfoContext(ctx, "inside")
		return gateway.Outcome{ID: req.ID}, gateway.ErrUnavailable
	}}, func(o *api.Options) { o.Logger = log })
	rec := serve(h, "POST", "/r", "x", map[string]string{"Traceparent": callerTrace, "X-Request-Id": "req-7"})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 { // inside, request failed, access
		t.Fatalf("log lines:\n%s", buf.String())
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m["correlation_id"] != rec.Header().Get(api.HeaderCorrelationID) || m["route"] != "r" ||
			m["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" || m["request_id"] != "req-7" {
			t.Errorf("line without the request's attributes: %s", l)
		}
	}
	var access map[string]any
	_ = json.Unmarshal([]byte(lines[2]), &access)
	if access["msg"] != "request" || access["level"] != "INFO" || access["status"] != float64(503) ||
		access["pattern"] != "/r" || access["node"] != "n1" {
		t.Errorf("access line %v", access)
	}
}
