package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/api/middleware"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/gateway"
)

func keyHash(key string) string {
	s := sha256.Sum256([]byte(key))
	return hex.EncodeToString(s[:])
}

// keysAuth accepts alice's key "alice-key-1" and bob's "bob-key-2".
func keysAuth(t testing.TB) *middleware.APIKeys {
	t.Helper()
	a, err := middleware.NewAPIKeys([]middleware.APIKeyHash{
		{Principal: "alice", SHA256: keyHash("alice-key-1")},
		{Principal: "bob", SHA256: keyHash("bob-key-2")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// principalGateway echoes the principal the api saw as the reply body.
func principalGateway() *stub {
	return &stub{do: func(ctx context.Context, req *gateway.Request) (gateway.Outcome, error) {
		return gateway.Outcome{ID: req.ID, Reply: envelope.Reply{Body: []byte("principal=" + api.Principal(ctx))}}, nil
	}}
}

func TestAPIKeyAuth(t *testing.T) {
	opt := func(o *api.Options) {
		o.Auth = keysAuth(t)
		o.Routes = []api.Route{testRoute("/r", gateway.ModeSync)}
		opt := testRoute("/opt", gateway.ModeSync)
		opt.Auth = middleware.AuthOptional
		open := testRoute("/open", gateway.ModeSync)
		open.Auth = middleware.AuthNone
		o.Routes = append(o.Routes, opt, open)
	}
	h := newHandler(t, principalGateway(), opt)
	for _, tc := range []struct {
		name, path, authz string
		status            int
		body, challenge   string
	}{
		{"good alice", "/r", "Bearer alice-key-1", 200, "principal=alice", ""},
		{"good bob, scheme in lower case", "/r", "bearer bob-key-2", 200, "principal=bob", ""},
		{"missing", "/r", "", 401, "", `Bearer realm="syncgate"`},
		{"wrong key", "/r", "Bearer alice-key-2", 401, "", `Bearer realm="syncgate", error="invalid_token"`},
		{"basic scheme", "/r", "Basic YWxpY2U6a2V5", 401, "", `Bearer realm="syncgate", error="invalid_token"`},
		{"malformed token", "/r", "Bearer alice key", 401, "", `Bearer realm="syncgate", error="invalid_token"`},
		{"no token", "/r", "Bearer ", 401, "", `Bearer realm="syncgate", error="invalid_token"`},
		{"optional, anonymous", "/opt", "", 200, "principal=", ""},
		{"optional, good", "/opt", "Bearer bob-key-2", 200, "principal=bob", ""},
		{"optional, bad key still refused", "/opt", "Bearer nope", 401, "", `Bearer realm="syncgate", error="invalid_token"`},
		{"none ignores a bad key", "/open", "Bearer nope", 200, "principal=", ""},
		{"anonymous poll finds no owned request (see TestOwnership)", "/v1/requests/x", "", 404, "", ""},
		{"poll with a credential reaches the store", "/v1/requests/x", "Bearer alice-key-1", 404, "", ""},
		{"poll with a bad credential", "/v1/requests/x", "Bearer nope", 401, "", `Bearer realm="syncgate", error="invalid_token"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := "POST"
			if strings.HasPrefix(tc.path, api.PollPath) {
				method = "GET"
			}
			hdr := map[string]string{}
			if tc.authz != "" {
				hdr["Authorization"] = tc.authz
			}
			rec := serve(h, method, tc.path, "x", hdr)
			if rec.Code != tc.status {
				t.Fatalf("status %d %s, want %d", rec.Code, rec.Body, tc.status)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
			if tc.status == 401 {
				wantProblem(t, rec, api.ProblemUnauthorized)
				if tok := strings.TrimPrefix(tc.authz, "Bearer "); tok != "" && strings.Contains(rec.Body.String(), tok) {
					t.Errorf("the problem echoes the credential: %s", rec.Body)
				}
			}
			if tc.body != "" && rec.Body.String() != tc.body {
				t.Errorf("body %q, want %q", rec.Body, tc.body)
			}
		})
	}
}

// failingAuth cannot decide (an identity provider is down).
type failingAuth struct{}

func (failingAuth) Authenticate(context.Context, string) (string, error) {
	return "", errors.New("jwks: fetch: connection refused")
}

func TestAuthUnavailableNeverLetsThrough(t *testing.T) {
	called := false
	gw := &stub{do: func(ctx context.Context, req *gateway.Request) (gateway.Outcome, error) {
		called = true
		return gateway.Outcome{ID: req.ID}, nil
	}}
	h := newHandler(t, gw, func(o *api.Options) { o.Auth = failingAuth{} })
	rec := serve(h, "POST", "/r", "x", map[string]string{"Authorization": "Bearer abc"})
	p := wantProblem(t, rec, api.ProblemAuthUnavailable)
	if called || strings.Contains(p.Detail, "refused") || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("called %v, problem %+v, Retry-After %q", called, p, rec.Header().Get("Retry-After"))
	}
}

func TestNoAuthConfiguredIgnoresAuthorization(t *testing.T) {
	h := newHandler(t, principalGateway(), func(o *api.Options) {
		o.Routes = []api.Route{testRoute("/r", gateway.ModeSync)}
	})
	rec := serve(h, "POST", "/r", "x", map[string]string{"Authorization": "Bearer whatever"})
	if rec.Code != http.StatusOK || rec.Body.String() != "principal=" {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

func TestRouteAuthNeedsAnAuthenticator(t *testing.T) {
	rt := testRoute("/r", gateway.ModeSync)
	rt.Auth = middleware.AuthRequired
	if _, err := api.New(api.Options{Gateway: &stub{}, Routes: []api.Route{rt}}); err == nil {
		t.Fatal("auth required without an authenticator accepted")
	}
	rt.Auth = "sometimes"
	if _, err := api.New(api.Options{Gateway: &stub{}, Routes: []api.Route{rt}, Auth: keysAuth(t)}); err == nil {
		t.Fatal("auth sometimes accepted")
	}
}
