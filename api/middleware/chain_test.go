package middleware_test

import (
	"context"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/syncgate/syncgate/api/middleware"
)

type fixed struct {
	principal string
	err       error
}

func (f fixed) Authenticate(context.Context, string) (string, error) { return f.principal, f.err }

type certs struct{ fixed }

func (c certs) AuthenticateCert(context.Context, *x509.Certificate) (string, error) {
	return c.principal, c.err
}

func TestChain(t *testing.T) {
	refused := fixed{err: middleware.ErrInvalidCredential}
	down := fixed{err: errors.New("jwks: connection refused")}
	alice := fixed{principal: "alice"}
	for _, tc := range []struct {
		name  string
		chain middleware.Chain
		want  string
		err   error // nil, ErrInvalidCredential, or "undecided" (any other)
	}{
		{"first accepts", middleware.Chain{alice, refused}, "alice", nil},
		{"second accepts", middleware.Chain{refused, alice}, "alice", nil},
		{"all refuse", middleware.Chain{refused, refused}, "", middleware.ErrInvalidCredential},
		{"empty refuses", middleware.Chain{}, "", middleware.ErrInvalidCredential},
		{"an outage is never a pass", middleware.Chain{refused, down}, "", down.err},
		{"an outage before a refusal stays undecided", middleware.Chain{down, refused}, "", down.err},
		{"a later source may still accept", middleware.Chain{down, alice}, "alice", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.chain.Authenticate(context.Background(), "tok")
			if p != tc.want || !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("Authenticate = %q, %v; want %q, %v", p, err, tc.want, tc.err)
			}
		})
	}
	if _, err := (middleware.Chain{alice}).AuthenticateCert(context.Background(), nil); !errors.Is(err, middleware.ErrInvalidCredential) {
		t.Errorf("a chain with no certificate source accepted a certificate: %v", err)
	}
	if p, err := (middleware.Chain{alice, certs{fixed{principal: "svc"}}}).AuthenticateCert(context.Background(), nil); p != "svc" || err != nil {
		t.Errorf("AuthenticateCert = %q, %v; want svc", p, err)
	}
}
