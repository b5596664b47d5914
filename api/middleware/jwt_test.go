package middleware_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/syncgate/syncgate/api/middleware"
	"github.com/syncgate/syncgate/internal/testenv"
)

// runJWT starts a JWT authenticator on is's JWKS, stopped at the end of t.
// Unless wait is false it waits until the keys are fetched.
func runJWT(t testing.TB, is *testenv.Issuer, wait bool, edit func(*middleware.JWTConfig)) *middleware.JWT {
	t.Helper()
	cfg := middleware.JWTConfig{JWKSURL: is.URL, Issuer: is.Name, Audience: is.Audience,
		RefreshInterval: time.Hour, UnknownKIDInterval: time.Hour, FetchTimeout: 5 * time.Second}
	if edit != nil {
		edit(&cfg)
	}
	j, err := middleware.NewJWT(cfg)
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
	if wait {
		testenv.Eventually(t, 5*time.Second, "JWKS fetched", func() bool { return j.Check(ctx) == nil })
	}
	return j
}

// verdict runs an Authorization header through the Auth middleware with a
// and names the outcome: "ok:<principal>", "none" (no credential),
// "refused" (malformed or invalid: 401) or "unavailable" (503).
func verdict(a middleware.Authenticator, authz string) string {
	var got string
	h := middleware.Auth(a, middleware.AuthRequired, func(_ http.ResponseWriter, _ *http.Request, err error) {
		switch {
		case errors.Is(err, middleware.ErrNoCredential):
			got = "none"
		case errors.Is(err, middleware.ErrMalformedCredential), errors.Is(err, middleware.ErrInvalidCredential):
			got = "refused"
		default:
			got = "unavailable"
		}
	})(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		got = "ok:" + middleware.Principal(r.Context())
	}))
	r := httptest.NewRequest("POST", "/r", nil)
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	h.ServeHTTP(httptest.NewRecorder(), r)
	return got
}

func TestJWT(t *testing.T) {
	is := testenv.NewIssuer(t)
	rsaKey := is.NewRSA(t, "rsa-1", true)
	is.NewEC(t, "ec-1", "ES256", true)
	is.NewEC(t, "ec-noalg", "", true)
	is.NewRSA(t, "unpublished", false)
	j := runJWT(t, is, true, nil)

	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := is.Claims("alice")
		if edit != nil {
			edit(c)
		}
		return c
	}
	hour := time.Now().Add(time.Hour).Unix()
	pub, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, authz, want string
	}{
		{"good RS256", "Bearer " + is.Sign(t, "rsa-1", claims(nil)), "ok:alice"},
		{"good ES256", "Bearer " + is.Sign(t, "ec-1", claims(nil)), "ok:alice"},
		{"good without kid: every key is tried", "Bearer " + testenv.SignJWT(t, jwt.SigningMethodRS256, rsaKey, "", claims(nil)), "ok:alice"},
		{"scheme in lower case", "bearer " + is.Sign(t, "rsa-1", claims(nil)), "ok:alice"},
		{"missing Authorization", "", "none"},
		{"basic scheme", "Basic YWxpY2U6cHc=", "refused"},
		{"malformed header", "Bearer a b", "refused"},
		{"not a JWT", "Bearer abc", "refused"},
		{"expired", "Bearer " + is.Sign(t, "rsa-1", claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() })), "refused"},
		{"no exp", "Bearer " + is.Sign(t, "rsa-1", claims(func(c jwt.MapClaims) { delete(c, "exp") })), "refused"},
		{"not yet valid", "Bearer " + is.Sign(t, "rsa-1", claims(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(10 * time.Minute).Unix() })), "refused"},
		{"wrong audience", "Bearer " + is.Sign(t, "rsa-1", claims(func(c jwt.MapClaims) { c["aud"] = "another-service" })), "refused"},
		{"audience in a list", "Bearer " + is.Sign(t, "rsa-1", claims(func(c jwt.MapClaims) { c["aud"] = []string{"x", is.Audience} })), "ok:alice"},
		{"wrong issuer", "Bearer " + is.Sign(t, "rsa-1", claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" })), "refused"},
		{"no issuer", "Bearer " + is.Sign(t, "rsa-1", claims(func(c jwt.MapClaims) { delete(c, "iss") })), "refused"},
		{"unknown kid", "Bearer " + is.Sign(t, "unpublished", claims(nil)), "refused"},
		{"signed by another key under a known kid", "Bearer " + testenv.SignJWT(t, jwt.SigningMethodRS256, mustRSA(t, is), "rsa-1", claims(nil)), "refused"},
		{"alg none", "Bearer " + testenv.SignJWT(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "rsa-1", claims(nil)), "refused"},
		{"HS256 with the public key as secret", "Bearer " + testenv.SignJWT(t, jwt.SigningMethodHS256, pub, "rsa-1", claims(nil)), "refused"},
		{"HS256 with the public key, no kid", "Bearer " + testenv.SignJWT(t, jwt.SigningMethodHS256, pub, "", claims(nil)), "refused"},
		{"RS256 under the kid of an ES256 key", "Bearer " + testenv.SignJWT(t, jwt.SigningMethodRS256, rsaKey, "ec-1", claims(nil)), "refused"},
		{"RS256 under the kid of an EC key without alg", "Bearer " + testenv.SignJWT(t, jwt.SigningMethodRS256, rsaKey, "ec-noalg", claims(nil)), "refused"},
		{"missing principal claim", "Bearer " + is.Sign(t, "rsa-1", claims(func(c jwt.MapClaims) { delete(c, "sub") })), "refused"},
		{"empty principal claim", "Bearer " + is.Sign(t, "rsa-1", claims(func(c jwt.MapClaims) { c["sub"] = "" })), "refused"},
		{"principal claim not a string", "Bearer " + is.Sign(t, "rsa-1", jwt.MapClaims{"iss": is.Name, "aud": is.Audience, "exp": hour, "sub": 42}), "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := verdict(j, tc.authz); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// mustRSA returns a key the issuer does not know.
func mustRSA(t *testing.T, is *testenv.Issuer) any {
	return is.NewRSA(t, "stranger-"+t.Name(), false)
}

func TestJWTPrincipalClaimAndLeeway(t *testing.T) {
	is := testenv.NewIssuer(t)
	is.NewRSA(t, "k", true)
	j := runJWT(t, is, true, func(c *middleware.JWTConfig) {
		c.PrincipalClaim = "email"
		c.Leeway = time.Minute
	})
	c := is.Claims("svc-123")
	c["email"] = "alice@example.com"
	c["exp"] = time.Now().Add(-30 * time.Second).Unix() // within the leeway
	if got := verdict(j, "Bearer "+is.Sign(t, "k", c)); got != "ok:alice@example.com" {
		t.Fatalf("got %s", got)
	}
	c["exp"] = time.Now().Add(-2 * time.Minute).Unix()
	if got := verdict(j, "Bearer "+is.Sign(t, "k", c)); got != "refused" {
		t.Fatalf("expired beyond the leeway: got %s", got)
	}
}

// A token with an unknown kid makes one fetch at most per
// UnknownKIDInterval, however many arrive: the JWKS endpoint cannot be
// driven by callers.
func TestJWTUnknownKIDRefreshIsRateLimited(t *testing.T) {
	is := testenv.NewIssuer(t)
	is.NewRSA(t, "k", true)
	j := runJWT(t, is, true, nil) // UnknownKIDInterval 1h
	before := is.Fetches()
	for i := range 20 {
		kid := fmt.Sprintf("random-%d", i)
		is.NewEC(t, kid, "ES256", false)
		if got := verdict(j, "Bearer "+is.Sign(t, kid, is.Claims("alice"))); got != "refused" {
			t.Fatalf("token %d: got %s", i, got)
		}
	}
	if n := is.Fetches() - before; n != 1 {
		t.Fatalf("%d fetches for 20 unknown kids, want 1", n)
	}
}

// Rotation: a token signed with a new key is refused until the JWKS
// publishes the key, then passes after the refresh its kid triggers; a
// key removed from the JWKS stops working after the next refresh.
func TestJWTKeyRotation(t *testing.T) {
	is := testenv.NewIssuer(t)
	is.NewRSA(t, "old", true)
	is.NewRSA(t, "new", false)
	j := runJWT(t, is, true, func(c *middleware.JWTConfig) { c.UnknownKIDInterval = 20 * time.Millisecond })
	newTok := "Bearer " + is.Sign(t, "new", is.Claims("alice"))
	oldTok := "Bearer " + is.Sign(t, "old", is.Claims("bob"))
	if got := verdict(j, newTok); got != "refused" {
		t.Fatalf("unpublished key: got %s", got)
	}
	is.Publish("new")
	testenv.Eventually(t, 5*time.Second, "the new key accepted", func() bool { return verdict(j, newTok) == "ok:alice" })
	if got := verdict(j, oldTok); got != "ok:bob" {
		t.Fatalf("old key while still published: got %s", got)
	}

	is.Unpublish("old")
	// The old kid is cached: only a refresh drops it. Another token with
	// an unknown kid triggers one (as would the background refresh).
	is.NewRSA(t, "other", false)
	otherTok := "Bearer " + is.Sign(t, "other", is.Claims("carol"))
	testenv.Eventually(t, 5*time.Second, "the removed key refused", func() bool {
		_ = verdict(j, otherTok)
		return verdict(j, oldTok) == "refused"
	})
}

func TestJWTBackgroundRefreshDropsRemovedKey(t *testing.T) {
	is := testenv.NewIssuer(t)
	is.NewRSA(t, "old", true)
	j := runJWT(t, is, true, func(c *middleware.JWTConfig) { c.RefreshInterval = 20 * time.Millisecond })
	oldTok := "Bearer " + is.Sign(t, "old", is.Claims("bob"))
	if got := verdict(j, oldTok); got != "ok:bob" {
		t.Fatalf("got %s", got)
	}
	is.Unpublish("old")
	testenv.Eventually(t, 5*time.Second, "the removed key refused", func() bool { return verdict(j, oldTok) == "refused" })
}

// A JWKS endpoint that is down never lets a JWT through: 503, whatever
// the token; an API key in the same chain still works.
func TestJWTKeysUnavailable(t *testing.T) {
	keys, err := middleware.NewAPIKeys([]middleware.APIKeyHash{{Principal: "ops", SHA256: keyHash("ops-key")}})
	if err != nil {
		t.Fatal(err)
	}
	tokens := func(is *testenv.Issuer) map[string]string {
		c := is.Claims("alice")
		expired := is.Claims("alice")
		expired["exp"] = time.Now().Add(-time.Hour).Unix()
		return map[string]string{
			"good":    "Bearer " + is.Sign(t, "k", c),
			"no kid":  "Bearer " + testenv.SignJWT(t, jwt.SigningMethodRS256, mustRSA(t, is), "", c),
			"expired": "Bearer " + is.Sign(t, "k", expired),
		}
	}
	check := func(t *testing.T, j *middleware.JWT, toks map[string]string) {
		t.Helper()
		chain := middleware.Chain{keys, j}
		for name, tok := range toks {
			if got := verdict(chain, tok); got != "unavailable" {
				t.Errorf("%s token: got %s, want unavailable", name, got)
			}
		}
		if got := verdict(chain, "Bearer ops-key"); got != "ok:ops" {
			t.Errorf("api key: got %s", got)
		}
		if got := verdict(chain, "Bearer not.a.jwt"); got != "refused" {
			t.Errorf("garbage: got %s, want refused", got)
		}
		if err := j.Check(context.Background()); !errors.Is(err, middleware.ErrKeysUnavailable) {
			t.Errorf("Check = %v", err)
		}
	}
	t.Run("before Run", func(t *testing.T) {
		is := testenv.NewIssuer(t)
		is.NewRSA(t, "k", true)
		j, err := middleware.NewJWT(middleware.JWTConfig{JWKSURL: is.URL, Issuer: is.Name, Audience: is.Audience})
		if err != nil {
			t.Fatal(err)
		}
		check(t, j, tokens(is))
	})
	for _, status := range []int{0, 500, 404} {
		t.Run(fmt.Sprintf("down at start (%d)", status), func(t *testing.T) {
			is := testenv.NewIssuer(t)
			is.NewRSA(t, "k", true)
			toks := tokens(is)
			if status == 0 {
				is.Close()
			} else {
				is.SetStatus(status)
			}
			j := runJWT(t, is, false, func(c *middleware.JWTConfig) { c.UnknownKIDInterval = 20 * time.Millisecond })
			testenv.Eventually(t, 5*time.Second, "first fetch failed", func() bool {
				err := j.Check(context.Background())
				return err != nil && strings.Contains(err.Error(), "never fetched")
			})
			check(t, j, toks)
			if status != 0 {
				// The endpoint recovers: the next token with a kid
				// fetches the keys (the rate limiter's first token).
				is.SetStatus(http.StatusOK)
				if got := verdict(j, toks["good"]); got != "ok:alice" {
					t.Fatalf("after recovery: got %s", got)
				}
			}
		})
	}
	t.Run("down later, unknown kid", func(t *testing.T) {
		is := testenv.NewIssuer(t)
		is.NewRSA(t, "k", true)
		is.NewRSA(t, "new", false)
		j := runJWT(t, is, true, func(c *middleware.JWTConfig) { c.RefreshInterval = 20 * time.Millisecond })
		good := "Bearer " + is.Sign(t, "k", is.Claims("alice"))
		is.SetStatus(http.StatusInternalServerError)
		testenv.Eventually(t, 5*time.Second, "a refresh failed", func() bool { return j.Check(context.Background()) != nil })
		// The new kid may be a rotation the JWKS would have shown: 503.
		if got := verdict(j, "Bearer "+is.Sign(t, "new", is.Claims("alice"))); got != "unavailable" {
			t.Errorf("unknown kid while the JWKS is down: got %s", got)
		}
		// A key fetched within max_key_age still checks tokens.
		if got := verdict(j, good); got != "ok:alice" {
			t.Errorf("cached key: got %s", got)
		}
	})
	t.Run("down longer than max_key_age", func(t *testing.T) {
		is := testenv.NewIssuer(t)
		is.NewRSA(t, "k", true)
		j := runJWT(t, is, true, func(c *middleware.JWTConfig) {
			c.RefreshInterval = 20 * time.Millisecond
			c.MaxKeyAge = 100 * time.Millisecond
		})
		good := "Bearer " + is.Sign(t, "k", is.Claims("alice"))
		is.SetStatus(http.StatusInternalServerError)
		testenv.Eventually(t, 5*time.Second, "keys stale", func() bool { return verdict(j, good) == "unavailable" })
		check(t, j, tokens(is))
	})
	t.Run("after Run ends", func(t *testing.T) {
		is := testenv.NewIssuer(t)
		is.NewRSA(t, "k", true)
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
		testenv.Eventually(t, 5*time.Second, "JWKS fetched", func() bool { return j.Check(ctx) == nil })
		cancel()
		<-done
		if got := verdict(j, "Bearer "+is.Sign(t, "k", is.Claims("alice"))); got != "unavailable" {
			t.Fatalf("got %s", got)
		}
	})
}

func TestNewJWTRefusesBadConfig(t *testing.T) {
	good := middleware.JWTConfig{JWKSURL: "https://idp.test/jwks", Issuer: "https://idp.test", Audience: "a"}
	for name, edit := range map[string]func(*middleware.JWTConfig){
		"no url":           func(c *middleware.JWTConfig) { c.JWKSURL = "" },
		"file url":         func(c *middleware.JWTConfig) { c.JWKSURL = "file:///etc/jwks" },
		"relative url":     func(c *middleware.JWTConfig) { c.JWKSURL = "/jwks" },
		"no issuer":        func(c *middleware.JWTConfig) { c.Issuer = "" },
		"no audience":      func(c *middleware.JWTConfig) { c.Audience = "" },
		"HS256":            func(c *middleware.JWTConfig) { c.Algorithms = []string{"RS256", "HS256"} },
		"none":             func(c *middleware.JWTConfig) { c.Algorithms = []string{"none"} },
		"max age < period": func(c *middleware.JWTConfig) { c.RefreshInterval, c.MaxKeyAge = time.Hour, time.Minute },
	} {
		c := good
		edit(&c)
		if _, err := middleware.NewJWT(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := middleware.NewJWT(good); err != nil {
		t.Errorf("good config refused: %v", err)
	}
}

func keyHash(key string) string {
	s := sha256.Sum256([]byte(key))
	return hex.EncodeToString(s[:])
}

// FuzzAuthenticate runs Authorization headers through the whole credential
// path (ParseBearer, then API keys, then JWT against a live JWKS): it
// never panics, never reports the keys unavailable while they are not,
// and names a principal only for the API key or a JWT whose signed part
// (header and claims) is one the issuer signed.
func FuzzAuthenticate(f *testing.F) {
	is := testenv.NewIssuer(f)
	rsaKey := is.NewRSA(f, "k", true)
	is.NewEC(f, "e", "ES256", true)
	keys, err := middleware.NewAPIKeys([]middleware.APIKeyHash{{Principal: "alice", SHA256: keyHash("alice-key")}})
	if err != nil {
		f.Fatal(err)
	}
	j := runJWT(f, is, true, nil)
	chain := middleware.Chain{keys, j}
	good, goodEC := is.Sign(f, "k", is.Claims("carol")), is.Sign(f, "e", is.Claims("carol"))
	signed := good[:strings.LastIndexByte(good, '.')]
	signedEC := goodEC[:strings.LastIndexByte(goodEC, '.')]
	expired := is.Claims("carol")
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	pub, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		"", "Bearer alice-key", "bearer  alice-key", "Bearer alice-key=", "Basic YWxpY2U6a2V5",
		"Bearer " + good, "Bearer " + goodEC,
		"Bearer " + is.Sign(f, "k", expired),
		"Bearer " + signed + ".", "Bearer " + signed, "Bearer " + good + "A", "Bearer " + good[:len(good)-2],
		"Bearer " + testenv.SignJWT(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "k", is.Claims("carol")),
		"Bearer " + testenv.SignJWT(f, jwt.SigningMethodHS256, pub, "k", is.Claims("carol")),
		"Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6Im5vcGUifQ.e30.c2ln", "Bearer a.b.c", "Bearer ..", "Bearer \xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		got := verdict(chain, h)
		p, ok := strings.CutPrefix(got, "ok:")
		if !ok {
			if got == "unavailable" {
				t.Fatalf("%q: keys reported unavailable", h)
			}
			return
		}
		tok, err := middleware.ParseBearer(h)
		switch {
		case err != nil:
			t.Fatalf("%q passed as %s without a bearer token: %v", h, p, err)
		case p == "alice" && tok == "alice-key":
		case p == "carol" && (strings.HasPrefix(tok, signed+".") || strings.HasPrefix(tok, signedEC+".")):
		default:
			t.Fatalf("%q passed as %s", h, p)
		}
	})
}
