package middleware

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
)

// APIKey is one accepted key: its principal and the SHA-256 of the key.
// Only the hash is configured; the key itself is never stored.
type APIKey struct {
	Principal string
	SHA256    [sha256.Size]byte
}

// APIKeys authenticates bearer tokens against a list of key hashes.
type APIKeys struct{ keys []APIKey }

// APIKeyHash is a configured key: a principal and the hex SHA-256 of its
// key. A principal may have several keys (rotation).
type APIKeyHash struct {
	Principal string
	SHA256    string
}

// NewAPIKeys checks the hashes of the accepted keys.
func NewAPIKeys(hashes []APIKeyHash) (*APIKeys, error) {
	a := &APIKeys{}
	for _, kh := range hashes {
		principal, h := kh.Principal, kh.SHA256
		if principal == "" {
			return nil, fmt.Errorf("api key: empty principal")
		}
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("api key of %q: sha256 must be 64 hex digits", principal)
		}
		k := APIKey{Principal: principal}
		copy(k.SHA256[:], b)
		a.keys = append(a.keys, k)
	}
	return a, nil
}

// Authenticate hashes token and compares it with every configured hash in
// constant time (no early exit, so the time taken says nothing about which
// key, if any, is close).
func (a *APIKeys) Authenticate(_ context.Context, token string) (string, error) {
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i := range a.keys {
		if subtle.ConstantTimeCompare(sum[:], a.keys[i].SHA256[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", fmt.Errorf("api key: %w", ErrInvalidCredential)
	}
	return a.keys[found].Principal, nil
}
