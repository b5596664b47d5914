package middleware_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/url"
	"testing"

	"github.com/syncgate/syncgate/api/middleware"
)

func TestClientCertRules(t *testing.T) {
	spiffe, _ := url.Parse("spiffe://example.org/ns/pay/sa/checkout")
	other, _ := url.Parse("https://example.org/other")
	full := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "alice"},
		DNSNames: []string{"checkout.pay.svc", "b.example"}, EmailAddresses: []string{"alice@example.org", "b@example.org"},
		URIs: []*url.URL{spiffe, other}}
	bare := &x509.Certificate{SerialNumber: big.NewInt(8)}
	control := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "alice\r\nX-Evil: 1"}}
	for _, tc := range []struct {
		rule middleware.CertRule
		leaf *x509.Certificate
		want string // "" : ErrInvalidCredential
	}{
		{middleware.CertCN, full, "alice"},
		{middleware.CertSANDNS, full, "checkout.pay.svc"},
		{middleware.CertSANEmail, full, "alice@example.org"},
		{middleware.CertSANURI, full, "spiffe://example.org/ns/pay/sa/checkout"},
		{middleware.CertCN, bare, ""},
		{middleware.CertSANDNS, bare, ""},
		{middleware.CertSANEmail, bare, ""},
		{middleware.CertSANURI, bare, ""},
		{middleware.CertCN, control, ""},
	} {
		c, err := middleware.NewClientCerts(tc.rule)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.AuthenticateCert(context.Background(), tc.leaf)
		if tc.want == "" {
			if !errors.Is(err, middleware.ErrInvalidCredential) {
				t.Errorf("%s of serial %d: %q, %v; want ErrInvalidCredential", tc.rule, tc.leaf.SerialNumber, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.rule, got, err, tc.want)
		}
	}
	if _, err := middleware.NewClientCerts("ou"); err == nil {
		t.Error("rule ou accepted")
	}
	c, _ := middleware.NewClientCerts(middleware.CertCN)
	if _, err := c.Authenticate(context.Background(), "token"); !errors.Is(err, middleware.ErrInvalidCredential) {
		t.Errorf("a bearer token: %v", err)
	}
}

// In a chain, the certificate source takes certificates and passes bearer
// tokens on to the next source.
func TestClientCertsInAChain(t *testing.T) {
	certs, _ := middleware.NewClientCerts(middleware.CertCN)
	keys, err := middleware.NewAPIKeys([]middleware.APIKeyHash{{Principal: "bob",
		SHA256: "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"}}) // "secret"
	if err != nil {
		t.Fatal(err)
	}
	chain := middleware.Chain{certs, keys}
	if p, err := chain.Authenticate(context.Background(), "secret"); err != nil || p != "bob" {
		t.Fatalf("bearer through the chain: %q %v", p, err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "alice"}}
	if p, err := chain.AuthenticateCert(context.Background(), leaf); err != nil || p != "alice" {
		t.Fatalf("certificate through the chain: %q %v", p, err)
	}
}
