package node_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/gateway"
	"github.com/syncgate/syncgate/internal/testenv"
)

// The demo's scatter-gather route, as README's example runs it: both demo
// services answer one request, within the wait (200) and after it (202,
// then the poll).
func TestGatherOnTheDemo(t *testing.T) {
	n := start(t, testConfig())
	hdr := map[string]string{"Content-Type": "application/json"}

	resp, body := send(t, "POST", n.base+"/demo/gather?ms=50", []byte(`{"user": "ann"}`), hdr)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var d gateway.GatherDoc
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	if d.ID != resp.Header.Get(api.HeaderCorrelationID) || d.Gather != gateway.GatherAll || len(d.Parts) != 2 {
		t.Fatalf("doc %s", body)
	}
	for i, name := range []string{"echo", "sleep"} {
		p := d.Parts[i]
		if p.Name != name || p.Destination != "demo."+name || p.State != "done" || p.Status != 200 || string(p.Body) != `{"user":"ann"}` || p.ID == d.ID {
			t.Errorf("part %d: %+v", i, p)
		}
	}

	resp, body = send(t, "POST", n.base+"/demo/gather?ms=1500", []byte(`{"user": "bob"}`), map[string]string{"Content-Type": "application/json", "Prefer": "wait=1"})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d: %s; want 202 after the wait", resp.StatusCode, body)
	}
	loc := resp.Header.Get("Location")
	resp, body = send(t, "GET", n.base+loc+"?wait=10s", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("poll: %d %s", resp.StatusCode, body)
	}
	d = gateway.GatherDoc{}
	if err := json.Unmarshal(body, &d); err != nil || len(d.Parts) != 2 || d.Parts[0].State != "done" || d.Parts[1].State != "done" || string(d.Parts[1].Body) != `{"user":"bob"}` {
		t.Fatalf("polled doc %s: %v", body, err)
	}
}

// Each part is published under a send span of its own, both children of
// the request's server span, and each demo service continues the trace of
// its part.
func TestGatherSpans(t *testing.T) {
	n, exp := startTraced(t, testConfig())
	const caller = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	resp, body := send(t, "POST", n.base+"/demo/gather?ms=1", []byte(`{}`), map[string]string{"Traceparent": caller, "Content-Type": "application/json"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	id, _ := trace.TraceIDFromHex("5bf92f3577b34da6a3ce929d0e0e4736")
	testenv.Eventually(t, 5*time.Second, "the server span and a send span per part", func() bool {
		s := spansOf(exp, id)
		_, a := s["send demo.echo"]
		_, b := s["send demo.sleep"]
		_, srv := s["POST /demo/gather"]
		return a && b && srv
	})
	spans := spansOf(exp, id)
	srv := spans["POST /demo/gather"]
	for _, name := range []string{"send demo.echo", "send demo.sleep"} {
		if s := spans[name]; s.SpanKind != trace.SpanKindProducer || s.Parent.SpanID() != srv.SpanContext.SpanID() {
			t.Errorf("%s: kind %v parent %v, want a producer span under the server span", name, s.SpanKind, s.Parent.SpanID())
		}
	}
}
