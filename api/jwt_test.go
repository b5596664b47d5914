package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/api/middleware"
	"github.com/syncgate/syncgate/gateway"
	"github.com/syncgate/syncgate/internal/testenv"
)

// JWTs end to end through the API, with API keys first in the chain as
// the node builds it: a good token names the principal, an expired one is
// a 401 invalid_token, and a JWKS that is down is a 503, never a pass.
func TestJWTAuth(t *testing.T) {
	is := testenv.NewIssuer(t)
	is.NewRSA(t, "k1", true)
	j, err := middleware.NewJWT(middleware.JWTConfig{JWKSURL: is.URL, Issuer: is.Name, Audience: is.Audience})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		j.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	testenv.Eventually(t, 5*time.Second, "JWKS fetched", func() bool { return j.Check(ctx) == nil })
	h := newHandler(t, principalGateway(), func(o *api.Options) {
		o.Auth = middleware.Chain{keysAuth(t), j}
		o.Routes = []api.Route{testRoute("/r", gateway.ModeSync)}
	})

	expired := is.Claims("carol")
	expired["exp"] = time.Now().Add(-time.Minute).Unix()
	for _, tc := range []struct {
		name, token string
		status      int
		body        string
		challenge   string
	}{
		{"good JWT", is.Sign(t, "k1", is.Claims("carol")), 200, "principal=carol", ""},
		{"api key before JWT", "alice-key-1", 200, "principal=alice", ""},
		{"expired JWT", is.Sign(t, "k1", expired), 401, "", `Bearer realm="syncgate", error="invalid_token"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(h, "POST", "/r", "x", map[string]string{"Authorization": "Bearer " + tc.token})
			if rec.Code != tc.status {
				t.Fatalf("status %d %s, want %d", rec.Code, rec.Body, tc.status)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
			if tc.status == 401 {
				wantProblem(t, rec, api.ProblemUnauthorized)
				if strings.Contains(rec.Body.String(), tc.token) {
					t.Errorf("the problem echoes the token: %s", rec.Body)
				}
			} else if rec.Body.String() != tc.body {
				t.Errorf("body %q, want %q", rec.Body, tc.body)
			}
		})
	}

	t.Run("JWKS down", func(t *testing.T) {
		// A token whose kid needs a fetch that fails: 503 with
		// Retry-After, the gateway never called.
		is.NewRSA(t, "k2", false)
		is.SetStatus(http.StatusInternalServerError)
		rec := serve(h, "POST", "/r", "x", map[string]string{"Authorization": "Bearer " + is.Sign(t, "k2", is.Claims("carol"))})
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d %s, want 503", rec.Code, rec.Body)
		}
		wantProblem(t, rec, api.ProblemAuthUnavailable)
		if rec.Header().Get("Retry-After") == "" || rec.Header().Get("WWW-Authenticate") != "" {
			t.Errorf("headers %v", rec.Header())
		}
	})
}
