package middleware

import (
	"context"
	"crypto/x509"
	"errors"
)

// CertAuthenticator turns a verified TLS client certificate (mTLS) into a
// principal. An Authenticator that also implements it is asked first when
// the request came over TLS with a verified client certificate: the
// certificate is then the credential and no bearer token is needed.
type CertAuthenticator interface {
	AuthenticateCert(ctx context.Context, leaf *x509.Certificate) (principal string, err error)
}

// Chain tries several credential sources in order: the first that accepts
// a token names the principal. A token refused by every source is
// ErrInvalidCredential; a source that cannot decide (its error does not
// wrap ErrInvalidCredential: a JWKS endpoint that is down) makes the whole
// chain undecided unless a later source accepts the token, so an outage
// never turns into a pass. Certificates go to the first source that is a
// CertAuthenticator.
type Chain []Authenticator

// Authenticate implements Authenticator.
func (c Chain) Authenticate(ctx context.Context, token string) (string, error) {
	var undecided error
	for _, a := range c {
		p, err := a.Authenticate(ctx, token)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, ErrInvalidCredential) && undecided == nil {
			undecided = err
		}
	}
	if undecided != nil {
		return "", undecided
	}
	return "", ErrInvalidCredential
}

// AuthenticateCert implements CertAuthenticator when a member does; with
// none, a certificate is not a credential (ErrInvalidCredential).
func (c Chain) AuthenticateCert(ctx context.Context, leaf *x509.Certificate) (string, error) {
	for _, a := range c {
		if ca, ok := a.(CertAuthenticator); ok {
			return ca.AuthenticateCert(ctx, leaf)
		}
	}
	return "", ErrInvalidCredential
}

// verifiedLeaf returns the request's client certificate when the TLS
// handshake verified it against the configured client CAs, else nil.
func verifiedLeaf(tlsChains [][]*x509.Certificate) *x509.Certificate {
	if len(tlsChains) == 0 || len(tlsChains[0]) == 0 {
		return nil
	}
	return tlsChains[0][0]
}
