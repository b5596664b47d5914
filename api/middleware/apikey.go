package middleware

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// APIKeys authenticates bearer tokens against a list of key hashes.
type APIKeys struct{ principals map[[sha256.Size]byte]string }

// APIKeyHash is a configured key: a principal and the hex SHA-256 of its
// key. A principal may have several keys (rotation).
type APIKeyHash struct {
	Principal string
	SHA256    string
}

// NewAPIKeys checks the hashes of the accepted keys. The same hash for two
// principals is refused: a key names one principal.
func NewAPIKeys(hashes []APIKeyHash) (*APIKeys, error) {
	a := &APIKeys{principals: make(map[[sha256.Size]byte]string, len(hashes))}
	for _, kh := range hashes {
		principal, h := kh.Principal, kh.SHA256
		if principal == "" {
			return nil, fmt.Errorf("api key: empty principal")
		}
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("api key of %q: sha256 must be 64 hex digits", principal)
		}
		sum := [sha256.Size]byte(b)
		if other, ok := a.principals[sum]; ok && other != principal {
			return nil, fmt.Errorf("api key of %q: the same key is configured for %q", principal, other)
		}
		a.principals[sum] = principal
	}
	return a, nil
}

// Authenticate hashes token and looks the hash up. The lookup's timing can
// depend on the hash, never on the token in a way a caller could use: to
// learn anything from it, one would have to choose tokens by their SHA-256
// (a preimage), so there is no byte-by-byte guessing of a key, which is
// what a constant-time comparison prevents. One lookup, whatever the
// number of keys.
func (a *APIKeys) Authenticate(_ context.Context, token string) (string, error) {
	if p, ok := a.principals[sha256.Sum256([]byte(token))]; ok {
		return p, nil
	}
	return "", fmt.Errorf("api key: %w", ErrInvalidCredential)
}
