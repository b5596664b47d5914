package node

import (
	"fmt"

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
			if !c.authConfigured() {
				bad(fmt.Sprintf("routes[%d].auth", i), "%s needs a credential source (auth.api_keys or tls.client_ca_file)", rc.Auth)
			}
		default:
			bad(fmt.Sprintf("routes[%d].auth", i), "%q is not required, optional or none", rc.Auth)
		}
	}
}
