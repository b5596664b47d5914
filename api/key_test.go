package api_test

import (
	"context"
	"strings"
	"testing"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/gateway"
)

func TestParseKeyTemplateRefuses(t *testing.T) {
	for _, tc := range []struct{ tmpl, path, want string }{
		{"", "/o", "empty"},
		{"constant", "/o", "no placeholder"},
		{"${params.id}", "/orders", "has no parameter {id}"},
		{"${params.idx}", "/orders/{id}", "has no parameter {idx}"},
		{"${headers.}", "/o", "not a header name"},
		{"${body#customer}", "/o", "starts with /"},
		{"${body#/a~2}", "/o", "~ must be followed by 0 or 1"},
		{"${query.x}", "/o", "want ${params.NAME}"},
		{"a-${headers.X}-${", "/o", "unclosed"},
	} {
		if _, err := api.ParseKeyTemplate(tc.tmpl, tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseKeyTemplate(%q, %q) = %v, want an error with %q", tc.tmpl, tc.path, err, tc.want)
		}
	}
}

// A keyed route publishes each request with the key its template builds
// from the path, a header and the JSON body; a request that lacks a value
// is refused with message-key-missing and nothing is published.
func TestRouteKey(t *testing.T) {
	var keys []string
	gw := &stub{do: func(_ context.Context, req *gateway.Request) (gateway.Outcome, error) {
		keys = append(keys, req.Message.Key)
		return gateway.Outcome{ID: req.ID}, nil
	}}
	route := func(path, tmpl string) api.Route {
		r := testRoute(path, gateway.ModeAuto)
		k, err := api.ParseKeyTemplate(tmpl, path)
		if err != nil {
			t.Fatal(err)
		}
		r.Key, r.MaxBody = k, 4096
		return r
	}
	h := newHandler(t, gw, func(o *api.Options) {
		o.Routes = []api.Route{
			route("/orders/{id}", "order-${params.id}"),
			route("/tenants/{tenant:[a-z]+}/pay", "${headers.X-Tenant}/${params.tenant}:${body#/customer/id}"),
			route("/escaped", "${body#/a~1b/0/~0c}"),
			testRoute("/plain", gateway.ModeAuto),
		}
	})
	for _, tc := range []struct {
		target, body string
		header       map[string]string
		want         string // the key; "" for a refusal
	}{
		{"/orders/42", "x", nil, "order-42"},
		{"/tenants/acme/pay", `{"customer":{"id":"c-7"}}`, map[string]string{"X-Tenant": "eu"}, "eu/acme:c-7"},
		{"/tenants/acme/pay", `{"customer":{"id":1234567890123456789}}`, map[string]string{"X-Tenant": "eu"}, "eu/acme:1234567890123456789"},
		{"/tenants/acme/pay", `{"customer":{"id":true}}`, map[string]string{"X-Tenant": "eu"}, "eu/acme:true"},
		{"/escaped", `{"a/b":[{"~c":"deep"}]}`, nil, "deep"},
		{"/tenants/acme/pay", `{"customer":{"id":"c-7"}}`, nil, ""},                                   // no header
		{"/tenants/acme/pay", `{"customer":{}}`, map[string]string{"X-Tenant": "eu"}, ""},             // no member
		{"/tenants/acme/pay", `{"customer":{"id":null}}`, map[string]string{"X-Tenant": "eu"}, ""},    // null
		{"/tenants/acme/pay", `{"customer":{"id":{"x":1}}}`, map[string]string{"X-Tenant": "eu"}, ""}, // object
		{"/tenants/acme/pay", `not json`, map[string]string{"X-Tenant": "eu"}, ""},
		{"/tenants/acme/pay", `{"customer":{"id":"` + strings.Repeat("k", 1100) + `"}}`, map[string]string{"X-Tenant": "eu"}, ""}, // too long
		{"/plain", "x", nil, "(the correlation id)"},
	} {
		keys = nil
		rec := serve(h, "POST", tc.target, tc.body, tc.header)
		switch {
		case tc.want == "":
			p := wantProblem(t, rec, api.ProblemMessageKey)
			if len(keys) != 0 {
				t.Errorf("%s %s: published %v after refusing it", tc.target, tc.body, keys)
			}
			t.Logf("%s: %s", tc.target, p.Detail)
		case len(keys) != 1:
			t.Errorf("%s %.40s: %d %s, published %v", tc.target, tc.body, rec.Code, rec.Body, keys)
		case tc.want == "(the correlation id)":
			if keys[0] != "" {
				t.Errorf("%s: key %q, want none (the envelope uses the correlation id)", tc.target, keys[0])
			}
		case keys[0] != tc.want:
			t.Errorf("%s %.40s: key %q, want %q", tc.target, tc.body, keys[0], tc.want)
		}
	}
}
