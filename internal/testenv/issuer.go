package testenv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Issuer is a JWT issuer for tests: a JWKS served over HTTP on loopback
// from keys generated in the test, and tokens signed with them.
type Issuer struct {
	URL string // the JWKS URL
	// Name and Audience are the iss and aud Claims puts in a token.
	Name, Audience string

	srv     *httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	keys    map[string]issuerKey // by kid
	order   []string
	status  int // answer of the JWKS endpoint; 200 serves the keys
}

type issuerKey struct {
	priv crypto.Signer
	alg  string // the JWK's alg; "" leaves it out
}

// NewIssuer starts an issuer with no keys, closed at the end of t.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	is := &Issuer{Name: "https://issuer.test", Audience: "syncgate", keys: make(map[string]issuerKey), status: http.StatusOK}
	is.srv = httptest.NewServer(http.HandlerFunc(is.serve))
	is.URL = is.srv.URL + "/.well-known/jwks.json"
	t.Cleanup(is.srv.Close)
	return is
}

func (is *Issuer) serve(w http.ResponseWriter, r *http.Request) {
	defer is.fetches.Add(1)
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.status != http.StatusOK {
		w.WriteHeader(is.status)
		return
	}
	var set jwkset.JWKSMarshal
	for _, kid := range is.order {
		k := is.keys[kid]
		jwk, err := jwkset.NewJWKFromKey(k.priv.Public(), jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.ALG(k.alg), USE: jwkset.UseSig}})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(set)
}

// Fetches returns how many times the JWKS was asked for.
func (is *Issuer) Fetches() int64 { return is.fetches.Load() }

// SetStatus makes the JWKS endpoint answer status (500: down) or, with
// 200, the keys again.
func (is *Issuer) SetStatus(status int) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.status = status
}

// Close stops the JWKS endpoint: fetches are refused.
func (is *Issuer) Close() { is.srv.Close() }

// NewRSA generates an RSA key and publishes it under kid with alg RS256
// (publish false: kept for signing only, see Publish).
func (is *Issuer) NewRSA(t testing.TB, kid string, publish bool) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is.add(kid, issuerKey{k, "RS256"}, publish)
	return k
}

// NewEC generates a P-256 key and publishes it under kid; alg "" leaves
// the JWK's alg out.
func (is *Issuer) NewEC(t testing.TB, kid, alg string, publish bool) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is.add(kid, issuerKey{k, alg}, publish)
	return k
}

func (is *Issuer) add(kid string, k issuerKey, publish bool) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys[kid] = k
	if publish {
		is.order = append(is.order, kid)
	}
}

// Publish puts the key of kid in the JWKS.
func (is *Issuer) Publish(kid string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.order = append(is.order, kid)
}

// Unpublish removes the key of kid from the JWKS (rotation); it can
// still sign.
func (is *Issuer) Unpublish(kid string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	for i, k := range is.order {
		if k == kid {
			is.order = append(is.order[:i], is.order[i+1:]...)
			return
		}
	}
}

// Claims returns valid claims for sub: this issuer, its audience, issued
// now, expiring in an hour.
func (is *Issuer) Claims(sub string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"iss": is.Name, "aud": is.Audience, "sub": sub,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

// Sign signs claims with the key of kid, by the JWK's algorithm (RS256,
// or ES256 for an EC key); kid "" signs with no kid header and needs
// Key instead.
func (is *Issuer) Sign(t testing.TB, kid string, claims jwt.Claims) string {
	t.Helper()
	is.mu.Lock()
	k, ok := is.keys[kid]
	is.mu.Unlock()
	if !ok {
		t.Fatalf("no key %q", kid)
	}
	method := jwt.SigningMethod(jwt.SigningMethodRS256)
	if _, ec := k.priv.(*ecdsa.PrivateKey); ec {
		method = jwt.SigningMethodES256
	}
	return SignJWT(t, method, k.priv, kid, claims)
}

// SignJWT signs claims with method and key, with a kid header unless kid
// is "".
func SignJWT(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
