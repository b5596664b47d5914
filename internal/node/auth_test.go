package node_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/syncgate/syncgate/internal/node"
)

// examples/auth.yaml runs as documented: the keys in its comments open the
// routes, no key or another key does not, and the open route stays open.
func TestAuthExample(t *testing.T) {
	// No readiness delay at the end: the example's 5 s default would be
	// most of this test's time.
	cfg, err := node.Load([]string{"--config", "../../examples/auth.yaml", "--addr", "127.0.0.1:0", "--readiness-delay", "0"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, cfg)
	for _, tc := range []struct {
		name, path, key string
		status          int
	}{
		{"alice", "/demo/echo", "alice-demo-key-8f3b2a", http.StatusOK},
		{"bob", "/demo/echo", "bob-demo-key-41c9de", http.StatusOK},
		{"no key", "/demo/echo", "", http.StatusUnauthorized},
		{"wrong key", "/demo/echo", "carol-key", http.StatusUnauthorized},
		{"open route", "/demo/echo-open", "", http.StatusOK},
		// The README's 429: a burst of 2, then one request per 10 s.
		{"limited 1", "/demo/echo-limited", "alice-demo-key-8f3b2a", http.StatusOK},
		{"limited 2", "/demo/echo-limited", "alice-demo-key-8f3b2a", http.StatusOK},
		{"limited 3", "/demo/echo-limited", "alice-demo-key-8f3b2a", http.StatusTooManyRequests},
		{"limited, bob's own bucket", "/demo/echo-limited", "bob-demo-key-41c9de", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{"Content-Type": "text/plain"}
			if tc.key != "" {
				h["Authorization"] = "Bearer " + tc.key
			}
			resp, body := send(t, "POST", r.base+tc.path, []byte("hi"), h)
			if resp.StatusCode != tc.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, body, tc.status)
			}
			if tc.status == http.StatusTooManyRequests && (resp.Header.Get("Retry-After") != "10" ||
				resp.Header.Get("RateLimit") != `"echo-limited";r=0;t=10` ||
				resp.Header.Get("RateLimit-Policy") != `"echo-limited";q=1;w=10;syncgate-burst=2`) {
				t.Errorf("429 headers %v", resp.Header)
			}
			if tc.status == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestAuthConfigErrors(t *testing.T) {
	const route = "routes: [{name: e, method: POST, path: /e, destination: d}]\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"clear key instead of hash", "auth: {api_keys: [{principal: a, sha256: secret}]}\n", "auth.api_keys[0].sha256"},
		{"no principal", "auth: {api_keys: [{sha256: " + strings.Repeat("ab", 32) + "}]}\n", "auth.api_keys[0].principal"},
		{"required without keys", "routes: [{name: e, method: POST, path: /e, destination: d, auth: required}]\n", "routes[0].auth"},
		{"unknown mode", "routes: [{name: e, method: POST, path: /e, destination: d, auth: maybe}]\n", "routes[0].auth"},
		{"sub-second window", "auth: {rate_limit: {rate: 10, per: 500ms}}\n" + route, "auth.rate_limit.per: 500ms is not a whole number of seconds"},
		{"negative rate", "auth: {rate_limit: {rate: -1}}\n" + route, "auth.rate_limit.rate: must be positive"},
		{"burst without rate", "auth: {rate_limit: {burst: 5}}\n" + route, "auth.rate_limit.rate: is required"},
		{"explicit zero burst", "auth: {rate_limit: {rate: 5, burst: 0}}\n" + route, "auth.rate_limit.burst: 0 is not a valid value"},
		{"route limit and off", "routes: [{name: e, method: POST, path: /e, destination: d, rate_limit: {rate: 1, off: true}}]\n", "routes[0].rate_limit.off"},
		{"route window", "routes: [{name: e, method: POST, path: /e, destination: d, rate_limit: {rate: 1, per: 1m30500ms}}]\n", "routes[0].rate_limit.per"},
		{"misspelt", "auth: {rate_limit: {rat: 5}}\n" + route, `auth.rate_limit.rat: unknown field; did you mean "rate"?`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := node.Parse([]byte(tc.yaml))
			if err == nil {
				cfg.SetDefaults()
				err = cfg.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one naming %s", err, tc.want)
			}
		})
	}
}
