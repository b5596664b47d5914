package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/syncgate/syncgate/api/middleware"
)

// Principal returns the caller authenticated for the request whose context
// is ctx, "" for an anonymous request (no auth configured, or a route with
// auth optional or none and no credential).
func Principal(ctx context.Context) string { return middleware.Principal(ctx) }

// unauthorized answers a request whose credential is missing or refused:
// 401 with WWW-Authenticate (RFC 6750 §3: no error code when the request
// had no credential, invalid_token otherwise). An error that is not a
// verdict on the credential (the authenticator could not decide) is a 503:
// the request is never let through. The reason goes to the log, never the
// token.
func (s *server) unauthorized(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, middleware.ErrNoCredential):
		w.Header().Set("WWW-Authenticate", `Bearer realm="syncgate"`)
		WriteProblem(w, r, ProblemUnauthorized, "this route needs an Authorization: Bearer credential", "")
	case errors.Is(err, middleware.ErrMalformedCredential), errors.Is(err, middleware.ErrInvalidCredential):
		s.log.InfoContext(r.Context(), "credential refused", slog.Any("error", err))
		refuse := s.refused // rate-limited: 429 once the address is over its limit
		if refuse == nil {
			refuse = invalidToken
		}
		refuse.ServeHTTP(w, r)
	default:
		s.log.WarnContext(r.Context(), "credential could not be checked", slog.Any("error", err))
		w.Header().Set("Retry-After", retryAfterSeconds(s.retryAfter))
		WriteProblem(w, r, ProblemAuthUnavailable, "the credential could not be checked; retry later", "")
	}
}

// invalidToken answers a refused credential: 401 invalid_token.
var invalidToken = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="syncgate", error="invalid_token"`)
	WriteProblem(w, r, ProblemUnauthorized, "the credential is malformed, unknown or expired", "")
})
