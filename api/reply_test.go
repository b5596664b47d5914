package api_test

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/gateway"
)

// replying is a gateway whose every request is answered with rep.
func replying(rep envelope.Reply, out gateway.Outcome) *stub {
	return &stub{do: func(_ context.Context, req *gateway.Request) (gateway.Outcome, error) {
		out.ID, out.Reply = req.ID, rep
		return out, nil
	}}
}

// A header the service sent several times (joined by LF in the envelope)
// is written as that many header lines.
func TestReplyRepeatedHeaders(t *testing.T) {
	h := newHandler(t, replying(envelope.Reply{ContentType: "text/plain", Body: []byte("x"),
		Header: map[string]string{"set-cookie": "a=1; Path=/\nb=2", "x-one": "1"}}, gateway.Outcome{}), nil)
	rec := serve(h, "POST", "/r", "x", nil)
	if got := rec.Header().Values("Set-Cookie"); !slices.Equal(got, []string{"a=1; Path=/", "b=2"}) {
		t.Errorf("Set-Cookie = %q, want two lines", got)
	}
	if got := rec.Header().Values("X-One"); !slices.Equal(got, []string{"1"}) {
		t.Errorf("X-One = %q", got)
	}
}

// A service cannot set the headers the gateway owns; Location (201
// Created, redirects) is the service's.
func TestReplyCannotSetGatewayHeaders(t *testing.T) {
	h := newHandler(t, replying(envelope.Reply{Status: 201, ContentType: "text/plain", Body: []byte("x"),
		Header: map[string]string{
			"idempotent-replayed": "false", "preference-applied": "respond-async", "x-request-id": "svc",
			"retry-after": "99", "x-correlation-id": someID, "x-content-type-options": "none",
			"location": "/orders/42",
		}}, gateway.Outcome{Attached: true, PreferenceApplied: "wait=1"}), nil)
	rec := serve(h, "POST", "/r", "x", map[string]string{"X-Request-Id": "caller-1", "Prefer": "wait=1"})
	for name, want := range map[string][]string{
		"Idempotent-Replayed":    {"true"},
		"Preference-Applied":     {"wait=1"},
		"X-Request-Id":           {"caller-1"},
		"Retry-After":            nil,
		"X-Content-Type-Options": {"nosniff"},
		"Location":               {"/orders/42"},
	} {
		if got := rec.Header().Values(name); !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if got := rec.Header().Values(api.HeaderCorrelationID); len(got) != 1 || got[0] == someID {
		t.Errorf("X-Correlation-Id = %q, want the gateway's only", got)
	}
}

// A reply body without a content type is served without one (RFC 9110
// §8.3: the gateway does not know it), and nothing sniffs one: not net/http,
// not a browser (nosniff, on every reply).
func TestReplyContentType(t *testing.T) {
	for _, tt := range []struct {
		name, ct, body, want string
	}{
		{"typed", "text/csv", "a,b", "text/csv"},
		{"untyped body", "", "<html><script>alert(1)</script>", ""},
		{"no body", "", "", ""},
	} {
		h := newHandler(t, replying(envelope.Reply{ContentType: tt.ct, Body: []byte(tt.body)}, gateway.Outcome{}), nil)
		rec := serve(h, "POST", "/r", "x", nil)
		if got := rec.Result().Header.Get("Content-Type"); got != tt.want {
			t.Errorf("%s: Content-Type = %q, want %q", tt.name, got, tt.want)
		}
		if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options = %q, want nosniff", tt.name, got)
		}
	}
}

// End to end on the in-memory broker: a reply header the service sent twice
// (LF-joined, as a backend hands it over) reaches the client as two lines.
func TestRepeatedReplyHeadersEndToEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gw := newBrokerGateway(t, func(envelope.Request) map[string]string {
			return map[string]string{envelope.Status: " 201 ", envelope.HeaderPrefix + "set-cookie": "a=1\nb=2"}
		})
		rt := api.Route{Method: "POST", Path: "/r", MaxBody: 1024,
			Route: &gateway.Route{Name: "r", Destination: "svc", Mode: gateway.ModeSync, Timeout: 10 * time.Second}}
		rec := serve(newHandler(t, gw, func(o *api.Options) { o.Routes = []api.Route{rt} }), "POST", "/r", "x", nil)
		if rec.Code != 201 {
			t.Fatalf("got %d %s, want 201", rec.Code, rec.Body)
		}
		if got := rec.Header().Values("Set-Cookie"); !slices.Equal(got, []string{"a=1", "b=2"}) {
			t.Errorf("Set-Cookie = %q, want two lines", got)
		}
	})
}
