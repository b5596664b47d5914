package clustertest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/correlation"
)

// The API keys of the ownership tests' principals.
const (
	aliceKey = "Bearer alice-cluster-key"
	bobKey   = "Bearer bob-cluster-key"
)

// authYAML configures two API-key principals, alice and bob (every route
// then requires a key), and forwards a header named Principal, which a
// caller may send but which must never become the principal.
func authYAML() string {
	hash := func(authz string) string {
		s := sha256.Sum256([]byte(strings.TrimPrefix(authz, "Bearer ")))
		return hex.EncodeToString(s[:])
	}
	return fmt.Sprintf(`auth:
  api_keys:
    - {principal: alice, sha256: %s}
    - {principal: bob, sha256: %s}
forward_headers: [Principal]
`, hash(aliceKey), hash(bobKey))
}

// sendAs sends a request without a body to path on n with the credential
// authz ("" for none) and returns status and body.
func (c *cluster) sendAs(method string, n *node, path, authz string) (int, string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, n.URL()+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s on node %s: %v", method, path, n.id, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestOwnershipAcrossNodes: alice's request, accepted on node a, is not
// bob's on node b: GET, a long poll and DELETE answer him exactly as for
// an unknown id (at once), the request stays pending, and alice polls it
// on b to its reply. The service sees alice as the principal, not what
// her Principal header said.
func TestOwnershipAcrossNodes(t *testing.T) {
	c := newClusterWith(t, onKafka, authYAML(), "a", "b")
	svc := startService(t, c, holdAll)
	a, b := c.Node("a"), c.Node("b")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	resp, err := c.post(ctx, a, routeEcho, body(0), "Authorization", aliceKey, "Prefer", "respond-async", "Principal", "bob")
	if err != nil || resp.status != http.StatusAccepted {
		t.Fatalf("alice's request on node a: %d %q %v, want 202", resp.status, resp.body, err)
	}
	req := svc.Held(1, 30*time.Second)[0]
	if req.Principal != "alice" || req.Header["principal"] != "bob" {
		t.Fatalf("the service saw principal %q, header principal %q; want alice, and bob only as an HTTP header", req.Principal, req.Header["principal"])
	}

	unknown := correlation.NewID()
	for _, who := range []struct{ name, authz string }{{"bob", bobKey}, {"anonymous", ""}} {
		for _, call := range []struct{ method, query string }{{"GET", ""}, {"GET", "?wait=10s"}, {"DELETE", ""}} {
			start := time.Now()
			status, got := c.sendAs(call.method, b, "/v1/requests/"+resp.id+call.query, who.authz)
			elapsed := time.Since(start)
			wantStatus, want := c.sendAs(call.method, b, "/v1/requests/"+unknown+call.query, who.authz)
			if status != http.StatusNotFound || status != wantStatus ||
				strings.ReplaceAll(got, resp.id, "{id}") != strings.ReplaceAll(want, unknown, "{id}") {
				t.Errorf("%s %s by %s on node b: %d %s\nan unknown id: %d %s", call.method, call.query, who.name, status, got, wantStatus, want)
			}
			if elapsed > 5*time.Second {
				t.Errorf("%s %s by %s took %v; an unknown id answers at once", call.method, call.query, who.name, elapsed)
			}
		}
	}
	if status, body := c.sendAs("GET", b, "/v1/requests/"+resp.id, aliceKey); status != http.StatusAccepted {
		t.Fatalf("alice's poll on node b: %d %q, want 202 (still pending)", status, body)
	}
	if err := svc.Answer(ctx, req, "a"); err != nil {
		t.Fatal(err)
	}
	if status, got := c.sendAs("GET", b, "/v1/requests/"+resp.id+"?wait=20s", aliceKey); status != http.StatusOK || got != body(0) {
		t.Errorf("alice's long poll on node b: %d %q, want 200 %q", status, got, body(0))
	}
	// Done: still not bob's (a 409 would tell him it exists).
	if status, body := c.sendAs("DELETE", b, "/v1/requests/"+resp.id, bobKey); status != http.StatusNotFound {
		t.Errorf("bob's DELETE of the answered request: %d %q, want 404", status, body)
	}
}

// TestIdempotencyKeyPerPrincipalAcrossNodes: the same key and body from
// alice on node a and bob on node b are two requests; alice's retry on b
// attaches to hers, publishing nothing.
func TestIdempotencyKeyPerPrincipalAcrossNodes(t *testing.T) {
	c := newClusterWith(t, onKafka, authYAML(), "a", "b")
	svc := startService(t, c, holdAll)
	a, b := c.Node("a"), c.Node("b")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	post := func(n *node, authz string) response {
		t.Helper()
		resp, err := c.post(ctx, n, routeEcho, body(0), "Authorization", authz, "Idempotency-Key", "order-7", "Prefer", "respond-async")
		if err != nil || resp.status != http.StatusAccepted {
			t.Fatalf("POST on node %s: %d %q %v, want 202", n.id, resp.status, resp.body, err)
		}
		return resp
	}
	alice := post(a, aliceKey)
	bob := post(b, bobKey)
	held := svc.Held(2, 30*time.Second)
	again := post(b, aliceKey)
	if bob.id == alice.id || bob.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("bob's request %s (replayed %q) is alice's %s", bob.id, bob.header.Get("Idempotent-Replayed"), alice.id)
	}
	if again.id != alice.id || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("alice's retry on node b: id %s replayed %q, want her %s replayed", again.id, again.header.Get("Idempotent-Replayed"), alice.id)
	}
	principals := map[string]bool{}
	for _, r := range held {
		principals[r.Principal] = true
	}
	if !principals["alice"] || !principals["bob"] {
		t.Errorf("the service saw principals %v, want alice and bob", principals)
	}
	// Nothing more was published: the retry's would be a third request.
	for _, r := range held {
		if err := svc.Answer(ctx, r, c.owner(r)); err != nil {
			t.Fatal(err)
		}
	}
	if status, got := c.sendAs("GET", a, "/v1/requests/"+alice.id+"?wait=20s", aliceKey); status != http.StatusOK || got != body(0) {
		t.Errorf("alice's poll: %d %q", status, got)
	}
	if distinct, repeated := svc.Seen(); distinct != 2 || repeated != 0 {
		t.Errorf("the service saw %d requests (%d more than once), want 2", distinct, repeated)
	}
}
