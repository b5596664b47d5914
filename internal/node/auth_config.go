package node

import (
	"fmt"
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

// APIKeyConfig is one accepted API key.
type APIKeyConfig struct {
	Principal string `yaml:"principal"`
	// SHA256 is the hex SHA-256 of the key; the key itself is never
	// configured.
	SHA256 string `yaml:"sha256"`
}

// Configured reports whether the auth section asks for credentials.
func (a AuthConfig) Configured() bool { return len(a.APIKeys) > 0 }

// authenticator builds the api's authenticator; nil when auth is not
// configured.
func (a AuthConfig) authenticator() (middleware.Authenticator, error) {
	if !a.Configured() {
		return nil, nil
	}
	var chain middleware.Chain
	if len(a.APIKeys) > 0 {
		hashes := make([]middleware.APIKeyHash, len(a.APIKeys))
		for i, k := range a.APIKeys {
			hashes[i] = middleware.APIKeyHash{Principal: k.Principal, SHA256: k.SHA256}
		}
		keys, err := middleware.NewAPIKeys(hashes)
		if err != nil {
			return nil, err
		}
		chain = append(chain, keys)
	}
	return chain, nil
}

func validateAuth(c *Config, bad func(field, format string, args ...any)) {
	rl := c.Auth.RateLimit
	validateRateLimit("auth.rate_limit", rl.Rate, rl.Per, rl.Burst, bad)
	for i, rc := range c.Routes {
		f, r := fmt.Sprintf("routes[%d].rate_limit", i), rc.RateLimit
		validateRateLimit(f, r.Rate, r.Per, r.Burst, bad)
		if r.Off && (r.Rate != 0 || r.Per != 0 || r.Burst != 0) {
			bad(f+".off", "a route's limit is either off or rate/per/burst, not both")
		}
	}
	for i, k := range c.Auth.APIKeys {
		if k.Principal == "" {
			bad(fmt.Sprintf("auth.api_keys[%d].principal", i), "is empty")
		}
		if _, err := middleware.NewAPIKeys([]middleware.APIKeyHash{{Principal: "p", SHA256: k.SHA256}}); err != nil {
			bad(fmt.Sprintf("auth.api_keys[%d].sha256", i), "must be the 64 hex digits of the key's SHA-256 (the key itself is never configured)")
		}
	}
	for i, rc := range c.Routes {
		switch middleware.AuthMode(rc.Auth) {
		case "", middleware.AuthNone:
		case middleware.AuthRequired, middleware.AuthOptional:
			if !c.Auth.Configured() {
				bad(fmt.Sprintf("routes[%d].auth", i), "%s needs the auth section (api_keys)", rc.Auth)
			}
		default:
			bad(fmt.Sprintf("routes[%d].auth", i), "%q is not required, optional or none", rc.Auth)
		}
	}
}
