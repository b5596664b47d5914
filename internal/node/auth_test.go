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
			if tc.status == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestAuthConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"clear key instead of hash", "auth: {api_keys: [{principal: a, sha256: secret}]}\n", "auth.api_keys[0].sha256"},
		{"no principal", "auth: {api_keys: [{sha256: " + strings.Repeat("ab", 32) + "}]}\n", "auth.api_keys[0].principal"},
		{"required without keys", "routes: [{name: e, method: POST, path: /e, destination: d, auth: required}]\n", "routes[0].auth"},
		{"unknown mode", "routes: [{name: e, method: POST, path: /e, destination: d, auth: maybe}]\n", "routes[0].auth"},
		{"one key, two principals", "auth: {api_keys: [{principal: a, sha256: " + strings.Repeat("ab", 32) + "}, {principal: b, sha256: " + strings.Repeat("ab", 32) + "}]}\n", "auth.api_keys: "},
		{"credential forwarded to the service", "auth: {api_keys: [{principal: a, sha256: " + strings.Repeat("ab", 32) + "}]}\n" +
			"routes: [{name: e, method: POST, path: /e, destination: d, forward_headers: [authorization]}]\n", "routes[0].forward_headers: forwards Authorization"},
		{"credential forwarded by the global list", "auth: {api_keys: [{principal: a, sha256: " + strings.Repeat("ab", 32) + "}]}\n" +
			"forward_headers: [Authorization]\nroutes: [{name: e, method: POST, path: /e, destination: d, auth: optional}]\n", "routes[0].forward_headers"},
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

// A route with auth none may forward Authorization: the gateway does not
// check it there, so the service is the one that does.
func TestAuthorizationForwardedWhereTheGatewayDoesNotCheck(t *testing.T) {
	cfg, err := node.Parse([]byte("auth: {api_keys: [{principal: a, sha256: " + strings.Repeat("ab", 32) + "}]}\n" +
		"routes: [{name: e, method: POST, path: /e, destination: d, auth: none, forward_headers: [Authorization]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
