package node

import (
	"fmt"
	"strings"

	"github.com/syncgate/syncgate/api/middleware"
)

// AuthConfig authenticates callers by an Authorization: Bearer credential.
// When it holds any credential source, every route defaults to auth
// required (a route may say optional or none), and GET/DELETE
// /v1/requests/{id} always need a credential.
type AuthConfig struct {
	// APIKeys are the accepted API keys, as SHA-256 hashes only
	// (printf %s KEY | sha256sum).
	APIKeys []APIKeyConfig `yaml:"api_keys"`
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
		keys, err := middleware.NewAPIKeys(a.apiKeyHashes())
		if err != nil {
			return nil, err
		}
		chain = append(chain, keys)
	}
	return chain, nil
}

func validateAuth(c *Config, bad func(field, format string, args ...any)) {
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
			for _, h := range append(append([]string(nil), c.ForwardHeaders...), rc.ForwardHeaders...) {
				if strings.EqualFold(h, "Authorization") {
					bad(fmt.Sprintf("routes[%d].forward_headers", i),
						"forwards Authorization, the caller's credential, which the gateway checks on this route: services learn the caller from the principal header; remove it (or set auth: none on the route)")
				}
			}
		}
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

func (a AuthConfig) apiKeyHashes() []middleware.APIKeyHash {
	hashes := make([]middleware.APIKeyHash, len(a.APIKeys))
	for i, k := range a.APIKeys {
		hashes[i] = middleware.APIKeyHash{Principal: k.Principal, SHA256: k.SHA256}
	}
	return hashes
}
