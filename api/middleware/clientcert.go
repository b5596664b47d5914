package middleware

import (
	"context"
	"crypto/x509"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// CertRule names the field of a verified client certificate that is the
// caller's principal.
type CertRule string

// The rules a ClientCerts picks the principal by.
const (
	// CertCN is the Subject Common Name: what `openssl req -subj /CN=alice`,
	// Kubernetes and PostgreSQL take as the client's user name.
	CertCN CertRule = "cn"
	// CertSANDNS is the first DNS name among the Subject Alternative Names.
	CertSANDNS CertRule = "san_dns"
	// CertSANEmail is the first e-mail address among the SANs.
	CertSANEmail CertRule = "san_email"
	// CertSANURI is the first URI among the SANs (a SPIFFE id such as
	// spiffe://example.org/ns/payments/sa/checkout).
	CertSANURI CertRule = "san_uri"
)

// maxPrincipalLen bounds a principal taken from a certificate.
const maxPrincipalLen = 1024

// ClientCerts authenticates verified TLS client certificates (mTLS): the
// principal is the certificate field its rule names. It is a credential
// source of a Chain; bearer tokens are not its business.
type ClientCerts struct{ rule CertRule }

// NewClientCerts returns a ClientCerts that picks the principal by rule.
func NewClientCerts(rule CertRule) (*ClientCerts, error) {
	switch rule {
	case CertCN, CertSANDNS, CertSANEmail, CertSANURI:
		return &ClientCerts{rule: rule}, nil
	}
	return nil, fmt.Errorf("client certificate rule %q is not cn, san_dns, san_email or san_uri", rule)
}

// Authenticate implements Authenticator: a bearer token is never a client
// certificate.
func (c *ClientCerts) Authenticate(context.Context, string) (string, error) {
	return "", fmt.Errorf("client certificate: a bearer token is not one: %w", ErrInvalidCredential)
}

// AuthenticateCert implements CertAuthenticator. A certificate whose rule
// yields nothing, or a name with control characters or invalid UTF-8 (the
// principal goes to logs and services), is ErrInvalidCredential.
func (c *ClientCerts) AuthenticateCert(_ context.Context, leaf *x509.Certificate) (string, error) {
	var p string
	switch c.rule {
	case CertCN:
		p = leaf.Subject.CommonName
	case CertSANDNS:
		if len(leaf.DNSNames) > 0 {
			p = leaf.DNSNames[0]
		}
	case CertSANEmail:
		if len(leaf.EmailAddresses) > 0 {
			p = leaf.EmailAddresses[0]
		}
	case CertSANURI:
		if len(leaf.URIs) > 0 {
			p = leaf.URIs[0].String()
		}
	}
	if p == "" {
		return "", fmt.Errorf("client certificate %x has no %s: %w", leaf.SerialNumber, c.rule, ErrInvalidCredential)
	}
	if len(p) > maxPrincipalLen || !utf8.ValidString(p) || hasControl(p) {
		return "", fmt.Errorf("client certificate %x: its %s is not a usable name: %w", leaf.SerialNumber, c.rule, ErrInvalidCredential)
	}
	return p, nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}
