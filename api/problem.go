package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/gateway"
)

// ProblemType is one entry of the problem catalogue. Its URI is stable:
// clients may switch on it. docs/problems.md lists them all.
type ProblemType struct {
	Slug   string
	Title  string
	Status int
}

// URI returns the problem's type URI.
func (p ProblemType) URI() string { return "urn:syncgate:problem:" + p.Slug }

// The problem catalogue.
var (
	ProblemNotFound         = ProblemType{"not-found", "No route for this path", http.StatusNotFound}
	ProblemMethodNotAllowed = ProblemType{"method-not-allowed", "Method not allowed on this path", http.StatusMethodNotAllowed}
	ProblemBodyTooLarge     = ProblemType{"body-too-large", "Request body too large", http.StatusRequestEntityTooLarge}
	ProblemBadRequest       = ProblemType{"bad-request", "Malformed request", http.StatusBadRequest}
	ProblemRequestNotFound  = ProblemType{"request-not-found", "Unknown or expired request", http.StatusNotFound}
	ProblemTimeout          = ProblemType{"timeout", "The service did not reply in time", http.StatusGatewayTimeout}
	ProblemBrokerDown       = ProblemType{"broker-unavailable", "The message broker is unavailable", http.StatusServiceUnavailable}
	ProblemShuttingDown     = ProblemType{"shutting-down", "The gateway is shutting down", http.StatusServiceUnavailable}
	ProblemStoreDown        = ProblemType{"store-unavailable", "The result store is unavailable", http.StatusServiceUnavailable}
	ProblemInternal         = ProblemType{"internal", "Internal gateway error", http.StatusInternalServerError}

	// Capacity: load, not an outage. The result or idempotency store holds
	// what earlier requests are owed and frees up as results expire; the
	// answer comes with Retry-After.
	ProblemStoreFull = ProblemType{"store-full", "The gateway's result store is full", http.StatusServiceUnavailable}
	// ProblemOutboxFull: the broker did not take the request and the
	// route's outbox is full (with Retry-After).
	ProblemOutboxFull = ProblemType{"outbox-full", "The broker is unavailable and the gateway's outbox is full", http.StatusServiceUnavailable}

	// Limits.
	ProblemHeaderTooLarge  = ProblemType{"header-too-large", "Request headers too large", http.StatusRequestHeaderFieldsTooLarge}
	ProblemBodyTimeout     = ProblemType{"body-timeout", "The request body was not sent in time", http.StatusRequestTimeout}
	ProblemOverloaded      = ProblemType{"overloaded", "Too many requests in flight on this gateway", http.StatusServiceUnavailable}
	ProblemRouteOverloaded = ProblemType{"route-overloaded", "Too many requests in flight on this route", http.StatusServiceUnavailable}

	// Authentication: a 401 also carries WWW-Authenticate: Bearer.
	ProblemUnauthorized = ProblemType{"unauthorized", "Missing or invalid credentials", http.StatusUnauthorized}
	// The credential could not be checked (an identity provider is down):
	// never a pass.
	ProblemAuthUnavailable = ProblemType{"auth-unavailable", "Credentials cannot be checked right now", http.StatusServiceUnavailable}

	// Rate limits (auth.rate_limit, a route's rate_limit): comes with
	// Retry-After, RateLimit-Policy and RateLimit.
	ProblemRateLimited = ProblemType{"rate-limited", "Too many requests", http.StatusTooManyRequests}

	// Idempotency-Key.
	ProblemKeyRequired = ProblemType{"idempotency-key-required", "This route requires an Idempotency-Key", http.StatusBadRequest}
	ProblemKeyInvalid  = ProblemType{"idempotency-key-invalid", "Malformed Idempotency-Key", http.StatusBadRequest}
	ProblemKeyMismatch = ProblemType{"idempotency-key-mismatch", "Idempotency-Key reused with a different payload", http.StatusUnprocessableEntity}
	ProblemKeyConflict = ProblemType{"idempotency-key-conflict", "The request with this Idempotency-Key has no retrievable outcome", http.StatusConflict}

	// A route that keys its messages (api.KeyTemplate) got a request
	// without the value it keys by.
	ProblemMessageKey = ProblemType{"message-key-missing", "The request lacks the value this route keys its messages by", http.StatusBadRequest}

	// A Callback-Url the route does not take: it takes no callbacks, or
	// the URL is malformed, outside callback.allow, or names a
	// non-public address.
	ProblemCallbackRefused = ProblemType{"callback-refused", "The callback URL is refused", http.StatusBadRequest}
	// GET /v1/requests/{id}/callback of a request without callback.
	ProblemNoCallback = ProblemType{"callback-not-found", "The request has no callback", http.StatusNotFound}

	// Request control.
	ProblemRequestCancelled = ProblemType{"request-cancelled", "The request was cancelled", http.StatusGone}
	ProblemRequestCompleted = ProblemType{"request-completed", "The request is complete and cannot be cancelled", http.StatusConflict}

	// Failures that stand in for a service's reply (envelope.FailureReply):
	// the gateway passes them on like a reply, so clients meet them too.
	ProblemInvalidReply = ProblemType{envelope.FailureInvalidReply, "The service's reply was invalid", http.StatusBadGateway}
	ProblemDeadLettered = ProblemType{envelope.FailureDeadLettered, "The service could not process the request", http.StatusBadGateway}
)

// Catalogue lists every problem type the gateway answers with.
func Catalogue() []ProblemType {
	return []ProblemType{
		ProblemNotFound, ProblemMethodNotAllowed, ProblemBodyTooLarge, ProblemBadRequest,
		ProblemRequestNotFound, ProblemTimeout, ProblemBrokerDown, ProblemShuttingDown,
		ProblemStoreDown, ProblemStoreFull, ProblemOutboxFull, ProblemInternal, ProblemHeaderTooLarge, ProblemBodyTimeout,
		ProblemOverloaded, ProblemRouteOverloaded, ProblemKeyRequired, ProblemKeyInvalid,
		ProblemKeyMismatch, ProblemKeyConflict, ProblemRequestCancelled, ProblemRequestCompleted,
		ProblemInvalidReply, ProblemDeadLettered, ProblemUnauthorized, ProblemAuthUnavailable,
		ProblemRateLimited, ProblemMessageKey, ProblemCallbackRefused, ProblemNoCallback,
	}
}

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type          string `json:"type"`
	Title         string `json:"title"`
	Status        int    `json:"status"`
	Detail        string `json:"detail,omitempty"`
	Instance      string `json:"instance,omitempty"`
	CorrelationID string `json:"correlation_id,omitempty"`
}

// WriteProblem writes p as application/problem+json.
func WriteProblem(w http.ResponseWriter, r *http.Request, pt ProblemType, detail, correlationID string) {
	p := Problem{
		Type: pt.URI(), Title: pt.Title, Status: pt.Status, Detail: detail,
		Instance: r.URL.Path, CorrelationID: correlationID,
	}
	body, _ := json.Marshal(p) // cannot fail: strings and ints only
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if correlationID != "" {
		h.Set(HeaderCorrelationID, correlationID)
	}
	w.WriteHeader(pt.Status)
	_, _ = w.Write(body)
}

// retryAfterSeconds renders d as a Retry-After value: whole seconds, at
// least 1.
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(int64(max(1, (d+time.Second-1)/time.Second)), 10)
}

// problemFor maps the gateway's errors to the catalogue: the one place where
// errors become HTTP statuses.
func problemFor(err error) ProblemType {
	switch {
	case errors.Is(err, gateway.ErrOutboxFull): // wraps ErrUnavailable too
		return ProblemOutboxFull
	case errors.Is(err, gateway.ErrTimeout):
		return ProblemTimeout
	case errors.Is(err, gateway.ErrUnavailable):
		return ProblemBrokerDown
	case errors.Is(err, gateway.ErrShuttingDown):
		return ProblemShuttingDown
	case errors.Is(err, gateway.ErrStoreFull):
		return ProblemStoreFull
	case errors.Is(err, gateway.ErrStore):
		return ProblemStoreDown
	case errors.Is(err, gateway.ErrNotFound):
		return ProblemRequestNotFound
	case errors.Is(err, gateway.ErrKeyRequired):
		return ProblemKeyRequired
	case errors.Is(err, gateway.ErrKeyMismatch):
		return ProblemKeyMismatch
	case errors.Is(err, gateway.ErrKeyConflict):
		return ProblemKeyConflict
	case errors.Is(err, gateway.ErrCancelled):
		return ProblemRequestCancelled
	case errors.Is(err, gateway.ErrCompleted):
		return ProblemRequestCompleted
	}
	return ProblemInternal
}
