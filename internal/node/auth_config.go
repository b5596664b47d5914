package node

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/syncgate/syncgate/api/middleware"
	"github.com/syncgate/syncgate/ratelimit"
)

// AuthConfig authenticates callers by an Authorization: Bearer credential.
// When it holds any credential source, every route defaults to auth
// required (a route may say optional or none), and GET/DELETE
// /v1/requests/{id} always need a credential.
type AuthConfig struct {
	// APIKeys are the accepted API keys, as SHA-256 hashes only
	// (printf %s KEY | sha256sum).
	APIKeys []APIKeyConfig `yaml:"api_keys"`
	// JWT accepts JWTs signed by a key of an issuer's JWKS; set by
	// jwks_url.
	JWT JWTConfig `yaml:"jwt"`
	// RateLimit is every caller's limit on the routes and polls (429
	// rate-limited above it); a route may set its own or turn it off.
	RateLimit RateLimitConfig `yaml:"rate_limit"`
}

// RateLimitConfig limits each caller to Rate requests per Per on average,
// up to Burst at once (a token bucket; in cluster mode one bucket in Redis
// for all nodes). A caller is its principal, or its IP address when
// anonymous (the connection's, never X-Forwarded-For).
type RateLimitConfig struct {
	// Rate is the requests admitted per Per; 0 (the default): no limit.
	Rate int `yaml:"rate"`
	// Per is the window, whole seconds (default 1s).
	Per time.Duration `yaml:"per"`
	// Burst is the requests admitted at once (default: rate).
	Burst int `yaml:"burst"`
}

// RouteRateLimitConfig is a route's own limit (a bucket per caller for the
// route alone, instead of auth.rate_limit's), or off.
type RouteRateLimitConfig struct {
	Rate  int           `yaml:"rate"`
	Per   time.Duration `yaml:"per"`
	Burst int           `yaml:"burst"`
	// Off exempts the route from auth.rate_limit.
	Off bool `yaml:"off"`
}

func (r RateLimitConfig) limit() *ratelimit.Limit {
	if r.Rate == 0 {
		return nil
	}
	return &ratelimit.Limit{Rate: r.Rate, Per: r.Per, Burst: r.Burst}
}

func (r RouteRateLimitConfig) limit() *ratelimit.Limit {
	return RateLimitConfig{Rate: r.Rate, Per: r.Per, Burst: r.Burst}.limit()
}

// RateLimited reports whether any rate limit is configured.
func (c *Config) RateLimited() bool {
	if c.Auth.RateLimit.Rate > 0 {
		return true
	}
	for _, r := range c.Routes {
		if r.RateLimit.Rate > 0 {
			return true
		}
	}
	return false
}

func defaultRateLimit(rate *int, per *time.Duration, burst *int) {
	if *rate == 0 {
		return
	}
	if *per == 0 {
		*per = time.Second
	}
	if *burst == 0 {
		*burst = *rate
	}
}

func validateRateLimit(field string, rate int, per time.Duration, burst int, bad func(field, format string, args ...any)) {
	switch {
	case rate < 0:
		bad(field+".rate", "must be positive")
	case rate == 0 && (per != 0 || burst != 0):
		bad(field+".rate", "is required with per and burst")
	}
	if per < time.Second || per%time.Second != 0 {
		if rate > 0 {
			bad(field+".per", "%s is not a whole number of seconds (the window of the RateLimit-Policy header)", per)
		}
	}
	if burst < 0 {
		bad(field+".burst", "must be positive")
	}
}

// JWTConfig accepts JWTs (auth.jwt). The node starts whether or not the
// JWKS can be fetched: until it is, a JWT is answered 503 auth-unavailable
// (API keys keep working), never let through.
type JWTConfig struct {
	// JWKSURL is the issuer's JSON Web Key Set: https, or http on
	// loopback only.
	JWKSURL string `yaml:"jwks_url"`
	// Issuer must equal the token's iss; Audience must be in its aud.
	Issuer   string `yaml:"issuer"`
	Audience string `yaml:"audience"`
	// PrincipalClaim names the string claim that is the principal.
	PrincipalClaim string `yaml:"principal_claim"`
	// Algorithms are the accepted alg values (asymmetric only).
	Algorithms []string `yaml:"algorithms"`
	// RefreshInterval: how often the JWKS is fetched in the background.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// UnknownKIDInterval: at most one extra fetch per interval for tokens
	// naming a kid the cached set lacks (a key rotation).
	UnknownKIDInterval time.Duration `yaml:"unknown_kid_interval"`
	// FetchTimeout bounds one fetch of the JWKS.
	FetchTimeout time.Duration `yaml:"fetch_timeout"`
	// MaxKeyAge: how long fetched keys stay trusted while the JWKS cannot
	// be fetched; after it, every JWT is answered 503.
	MaxKeyAge time.Duration `yaml:"max_key_age"`
	// Leeway is the clock skew allowed on exp and nbf; 0: none.
	Leeway time.Duration `yaml:"leeway"`
}

// DefaultJWTLeeway is auth.jwt.leeway's default (set in base: 0 means
// none).
const DefaultJWTLeeway = 30 * time.Second

func (j *JWTConfig) setDefaults() {
	defDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	defDur(&j.RefreshInterval, middleware.DefaultJWTRefreshInterval)
	defDur(&j.UnknownKIDInterval, middleware.DefaultJWTUnknownKIDInterval)
	defDur(&j.FetchTimeout, middleware.DefaultJWTFetchTimeout)
	defDur(&j.MaxKeyAge, middleware.DefaultJWTMaxKeyAge)
	if j.PrincipalClaim == "" {
		j.PrincipalClaim = middleware.DefaultJWTPrincipalClaim
	}
	if len(j.Algorithms) == 0 {
		j.Algorithms = append([]string(nil), middleware.JWTAlgorithms...)
	}
}

// APIKeyConfig is one accepted API key.
type APIKeyConfig struct {
	Principal string `yaml:"principal"`
	// SHA256 is the hex SHA-256 of the key; the key itself is never
	// configured.
	SHA256 string `yaml:"sha256"`
}

// Configured reports whether the auth section asks for credentials.
func (a AuthConfig) Configured() bool { return len(a.APIKeys) > 0 || a.JWT.JWKSURL != "" }

// authenticator builds the api's authenticator: API keys first, then JWT.
// nil when auth is not configured. The JWT authenticator, when there is
// one, is returned too: its Run fetches the keys.
func (a AuthConfig) authenticator(log *slog.Logger) (middleware.Authenticator, *middleware.JWT, error) {
	if !a.Configured() {
		return nil, nil, nil
	}
	var chain middleware.Chain
	if len(a.APIKeys) > 0 {
		keys, err := middleware.NewAPIKeys(a.apiKeyHashes())
		if err != nil {
			return nil, nil, err
		}
		chain = append(chain, keys)
	}
	var jwt *middleware.JWT
	if j := a.JWT; j.JWKSURL != "" {
		var err error
		jwt, err = middleware.NewJWT(middleware.JWTConfig{
			JWKSURL: j.JWKSURL, Issuer: j.Issuer, Audience: j.Audience, PrincipalClaim: j.PrincipalClaim,
			Algorithms: j.Algorithms, RefreshInterval: j.RefreshInterval, UnknownKIDInterval: j.UnknownKIDInterval,
			FetchTimeout: j.FetchTimeout, MaxKeyAge: j.MaxKeyAge, Leeway: j.Leeway, Logger: log,
		})
		if err != nil {
			return nil, nil, err
		}
		chain = append(chain, jwt)
	}
	return chain, jwt, nil
}

func validateJWT(j JWTConfig, bad func(field, format string, args ...any)) {
	if j.JWKSURL == "" {
		if j.Issuer != "" || j.Audience != "" {
			bad("auth.jwt.jwks_url", "is empty: auth.jwt needs the URL of the issuer's JSON Web Key Set")
		}
		return
	}
	if err := middleware.CheckJWKSURL(j.JWKSURL); err != nil {
		bad("auth.jwt.jwks_url", "%v", err)
	} else if u, _ := url.Parse(j.JWKSURL); u.Scheme == "http" && !isLoopback(u.Hostname()) {
		bad("auth.jwt.jwks_url", "must be https (http only on loopback): keys fetched over plain http can be replaced on the way")
	}
	if j.Issuer == "" {
		bad("auth.jwt.issuer", "is required: it ties a token to your issuer (a shared identity provider's keys sign tokens for every tenant)")
	}
	if j.Audience == "" {
		bad("auth.jwt.audience", "is required: without it a token the issuer made for any other service would be accepted here")
	}
	for i, alg := range j.Algorithms {
		if err := middleware.CheckJWTAlgorithm(alg); err != nil {
			bad(fmt.Sprintf("auth.jwt.algorithms[%d]", i), "%v", err)
		}
	}
	if j.MaxKeyAge < j.RefreshInterval {
		bad("auth.jwt.max_key_age", "%s is shorter than refresh_interval (%s): the keys would go stale between two fetches", j.MaxKeyAge, j.RefreshInterval)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validateAuth(c *Config, bad func(field, format string, args ...any)) {
	validateJWT(c.Auth.JWT, bad)
	rl := c.Auth.RateLimit
	validateRateLimit("auth.rate_limit", rl.Rate, rl.Per, rl.Burst, bad)
	for i, rc := range c.Routes {
		f, r := fmt.Sprintf("routes[%d].rate_limit", i), rc.RateLimit
		validateRateLimit(f, r.Rate, r.Per, r.Burst, bad)
		if r.Off && (r.Rate != 0 || r.Per != 0 || r.Burst != 0) {
			bad(f+".off", "a route's limit is either off or rate/per/burst, not both")
		}
	}
	keysOK := true
	for i, k := range c.Auth.APIKeys {
		if k.Principal == "" {
			bad(fmt.Sprintf("auth.api_keys[%d].principal", i), "is empty")
			keysOK = false
		}
		if _, err := middleware.NewAPIKeys([]middleware.APIKeyHash{{Principal: "p", SHA256: k.SHA256}}); err != nil {
			bad(fmt.Sprintf("auth.api_keys[%d].sha256", i), "must be the 64 hex digits of the key's SHA-256 (the key itself is never configured)")
			keysOK = false
		}
	}
	if keysOK {
		if _, err := middleware.NewAPIKeys(c.Auth.apiKeyHashes()); err != nil {
			bad("auth.api_keys", "%v", err)
		}
	}
	for i, rc := range c.Routes {
		if c.Auth.Configured() && rc.Auth != string(middleware.AuthNone) {
			for _, h := range c.forwardHeaders(rc) {
				if strings.EqualFold(h, "Authorization") {
					bad(fmt.Sprintf("routes[%d].forward_headers", i),
						"forwards Authorization, the caller's credential, which the gateway checks on this route: services learn the caller from the principal header; remove it (or set auth: none on the route)")
				}
			}
		}
		switch middleware.AuthMode(rc.Auth) {
		case "", middleware.AuthNone:
		case middleware.AuthRequired, middleware.AuthOptional:
			if !c.authConfigured() {
				bad(fmt.Sprintf("routes[%d].auth", i), "%s needs a credential source (auth.api_keys, auth.jwt or tls.client_ca_file)", rc.Auth)
			}
		default:
			bad(fmt.Sprintf("routes[%d].auth", i), "%q is not required, optional or none", rc.Auth)
		}
	}
}

func (a AuthConfig) apiKeyHashes() []middleware.APIKeyHash {
	hashes := make([]middleware.APIKeyHash, len(a.APIKeys))
	for i, k := range a.APIKeys {
		hashes[i] = middleware.APIKeyHash{Principal: k.Principal, SHA256: k.SHA256}
	}
	return hashes
}
