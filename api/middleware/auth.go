package middleware

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

// AuthMode says what a route asks of a caller's credential.
type AuthMode string

// The auth modes of a route.
const (
	// AuthRequired answers 401 without a valid credential.
	AuthRequired AuthMode = "required"
	// AuthOptional lets a request without a credential through with no
	// principal, but refuses a bad one (a wrong key is a mistake to report,
	// not an anonymous call).
	AuthOptional AuthMode = "optional"
	// AuthNone ignores the Authorization header.
	AuthNone AuthMode = "none"
)

// Authenticator turns a bearer token into a principal. It returns an error
// wrapping ErrInvalidCredential when the token is not accepted; any other
// error means the credential could not be checked (never a pass).
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (principal string, err error)
}

// Credential errors. Their text is safe for callers and logs: it never
// holds the token.
var (
	// ErrNoCredential: the request has no Authorization header.
	ErrNoCredential = errors.New("no credential")
	// ErrMalformedCredential: the header is not "Bearer <token>".
	ErrMalformedCredential = errors.New("malformed Authorization header")
	// ErrInvalidCredential: the token is unknown, expired or badly signed.
	ErrInvalidCredential = errors.New("invalid credential")
)

// maxTokenLen bounds the bearer token accepted (a JWT with a few claims is
// well under 4 KiB; the header limit caps the rest).
const maxTokenLen = 8 << 10

// ParseBearer returns the token of an Authorization header value of the
// form "Bearer <token>" (RFC 6750 §2.1: the scheme is case-insensitive, the
// token is b64token characters). An empty header is ErrNoCredential, any
// other shape ErrMalformedCredential.
func ParseBearer(h string) (string, error) {
	if h == "" {
		return "", ErrNoCredential
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrMalformedCredential
	}
	token = strings.TrimLeft(token, " ")
	if len(token) > maxTokenLen {
		return "", ErrMalformedCredential
	}
	// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
	body := strings.TrimRight(token, "=")
	if body == "" {
		return "", ErrMalformedCredential
	}
	for i := 0; i < len(body); i++ {
		if !b64TokenChar[body[i]] {
			return "", ErrMalformedCredential
		}
	}
	return token, nil
}

// b64TokenChar marks the characters of an RFC 6750 b64token before its
// "=" padding.
var b64TokenChar = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~+/" {
		t[c] = true
	}
	return t
}()

type principalKey struct{}

// WithPrincipal returns ctx carrying the authenticated principal.
func WithPrincipal(ctx context.Context, principal string) context.Context {
	return context.WithValue(ctx, principalKey{}, principal)
}

// Principal returns the principal authenticated for the request, "" when
// the request is anonymous (auth optional or none, or no auth configured).
func Principal(ctx context.Context) string {
	p, _ := ctx.Value(principalKey{}).(string)
	return p
}

// Auth checks the request's bearer credential with a according to mode and
// puts the principal in the request context (see Principal). A request that
// fails is passed to fail with the reason (ErrNoCredential,
// ErrMalformedCredential, an error wrapping ErrInvalidCredential, or an
// error from a that means the credential could not be checked). A nil a or
// AuthNone is a no-op. When a is also a CertAuthenticator, a client
// certificate verified in the TLS handshake is the credential (checked
// before any bearer token).
func Auth(a Authenticator, mode AuthMode, fail func(http.ResponseWriter, *http.Request, error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if a == nil || mode == AuthNone {
			return next
		}
		ca, _ := a.(CertAuthenticator)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ca != nil && r.TLS != nil {
				if leaf := verifiedLeaf(r.TLS.VerifiedChains); leaf != nil {
					principal, err := ca.AuthenticateCert(r.Context(), leaf)
					if err != nil {
						fail(w, r, err)
						return
					}
					next.ServeHTTP(w, r.WithContext(authenticated(r.Context(), principal)))
					return
				}
			}
			token, err := ParseBearer(r.Header.Get("Authorization"))
			if errors.Is(err, ErrNoCredential) && mode == AuthOptional {
				next.ServeHTTP(w, r)
				return
			}
			var principal string
			if err == nil {
				principal, err = a.Authenticate(r.Context(), token)
			}
			if err != nil {
				fail(w, r, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(authenticated(r.Context(), principal)))
		})
	}
}

// authenticated records principal in the request's context and in its Info
// (for the access log).
func authenticated(ctx context.Context, principal string) context.Context {
	if info := InfoFrom(ctx); info != nil {
		info.Principal = principal
	}
	return WithPrincipal(ctx, principal)
}
