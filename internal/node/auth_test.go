package node_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/responder/demo"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
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
		{"one key, two principals", "auth: {api_keys: [{principal: a, sha256: " + strings.Repeat("ab", 32) + "}, {principal: b, sha256: " + strings.Repeat("ab", 32) + "}]}\n", "auth.api_keys: "},
		{"credential forwarded to the service", "auth: {api_keys: [{principal: a, sha256: " + strings.Repeat("ab", 32) + "}]}\n" +
			"routes: [{name: e, method: POST, path: /e, destination: d, forward_headers: [authorization]}]\n", "routes[0].forward_headers: forwards Authorization"},
		{"credential forwarded by the global list", "auth: {api_keys: [{principal: a, sha256: " + strings.Repeat("ab", 32) + "}]}\n" +
			"forward_headers: [Authorization]\nroutes: [{name: e, method: POST, path: /e, destination: d, auth: optional}]\n", "routes[0].forward_headers"},
		{"jwt without jwks_url", "auth: {jwt: {issuer: i, audience: a}}\n", "auth.jwt.jwks_url: is empty"},
		{"jwks_url not a URL", "auth: {jwt: {jwks_url: idp.example.com/jwks, issuer: i, audience: a}}\n", "auth.jwt.jwks_url"},
		{"jwks_url over plain http", "auth: {jwt: {jwks_url: http://idp.example.com/jwks, issuer: i, audience: a}}\n", "auth.jwt.jwks_url: must be https"},
		{"jwt without issuer", "auth: {jwt: {jwks_url: https://idp.example.com/jwks, audience: a}}\n", "auth.jwt.issuer: is required"},
		{"jwt without audience", "auth: {jwt: {jwks_url: https://idp.example.com/jwks, issuer: i}}\n", "auth.jwt.audience: is required"},
		{"HMAC algorithm", "auth: {jwt: {jwks_url: https://idp.example.com/jwks, issuer: i, audience: a, algorithms: [RS256, HS256]}}\n", "auth.jwt.algorithms[1]"},
		{"keys stale between fetches", "auth: {jwt: {jwks_url: https://idp.example.com/jwks, issuer: i, audience: a, refresh_interval: 2h}}\n", "auth.jwt.max_key_age"},
		{"explicit zero refresh", "auth: {jwt: {jwks_url: https://idp.example.com/jwks, issuer: i, audience: a, refresh_interval: 0s}}\n", "auth.jwt.refresh_interval"},
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

// auth.jwt through the node: it starts while the JWKS is down (JWTs get
// 503, /readyz says degraded), and once the keys arrive a good token
// passes and an expired one is a 401.
func TestJWTAuthNode(t *testing.T) {
	is := testenv.NewIssuer(t)
	is.NewRSA(t, "k", true)
	is.SetStatus(http.StatusInternalServerError)
	cfg, err := node.Parse([]byte(`
addr: 127.0.0.1:0
shutdown: {readiness_delay: 0s}
demo: {enabled: true}
auth:
  jwt: {jwks_url: "` + is.URL + `", issuer: "` + is.Name + `", audience: ` + is.Audience + `,
        refresh_interval: 50ms, unknown_kid_interval: 20ms}
routes:
  - {name: echo, method: POST, path: /demo/echo, destination: ` + demo.EchoDestination + `, mode: sync}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, cfg)
	good := map[string]string{"Authorization": "Bearer " + is.Sign(t, "k", is.Claims("alice"))}
	resp, body := send(t, "POST", r.base+"/demo/echo", []byte("hi"), good)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "auth-unavailable") {
		t.Fatalf("JWKS down: %d %s", resp.StatusCode, body)
	}
	if resp, body := send(t, "GET", r.base+"/readyz", nil, nil); resp.StatusCode != http.StatusOK || string(body) != "ready (degraded)\njwks\n" {
		t.Fatalf("readyz while the JWKS is down: %d %s", resp.StatusCode, body)
	}

	is.SetStatus(http.StatusOK)
	testenv.Eventually(t, 5*time.Second, "the keys fetched", func() bool {
		resp, body := send(t, "GET", r.base+"/readyz", nil, nil)
		return resp.StatusCode == http.StatusOK && string(body) == "ok\n"
	})
	if resp, body := send(t, "POST", r.base+"/demo/echo", []byte("hi"), good); resp.StatusCode != http.StatusOK || string(body) != "hi" {
		t.Fatalf("good token: %d %s", resp.StatusCode, body)
	}
	expired := is.Claims("alice")
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	resp, body = send(t, "POST", r.base+"/demo/echo", []byte("hi"), map[string]string{"Authorization": "Bearer " + is.Sign(t, "k", expired)})
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Bearer realm="syncgate", error="invalid_token"` {
		t.Fatalf("expired token: %d %s %q", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
}
