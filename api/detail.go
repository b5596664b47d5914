package api

// safeDetails are the details of the problems the gateway's errors map to
// (problemFor): written for the caller, saying nothing about the gateway's
// insides (no addresses, no Go error chains). The error itself goes to the
// log line that carries the same correlation id (issue 16, point 7).
var safeDetails = map[ProblemType]string{
	ProblemTimeout:          "the service did not reply within the route's timeout",
	ProblemBrokerDown:       "the request could not be handed to the message broker; nothing was published; retry later",
	ProblemShuttingDown:     "the gateway is shutting down; retry",
	ProblemStoreFull:        "the gateway holds as many pending results as it may; retry after Retry-After",
	ProblemOutboxFull:       "the message broker is unavailable and the gateway's outbox holds as many requests as it may; nothing was published; retry after Retry-After",
	ProblemStoreDown:        "the result store failed, so no result could be promised; retry later",
	ProblemRequestNotFound:  "no such request is pending or stored here; results expire",
	ProblemKeyRequired:      "this route requires an Idempotency-Key header",
	ProblemKeyMismatch:      "this Idempotency-Key was used on this route with a different payload",
	ProblemKeyConflict:      "this Idempotency-Key is still bound, but the outcome of its request is gone; use a new key",
	ProblemRequestCancelled: "the request was cancelled",
	ProblemRequestCompleted: "the request is complete and cannot be cancelled",
	ProblemInternal:         "an internal error; quote the correlation id",
	ProblemRateLimited:      "this caller sent more requests than its rate limit allows; retry after Retry-After seconds (see the RateLimit header)",
}

// safeDetail returns the caller-safe detail of pt.
func safeDetail(pt ProblemType) string {
	if d, ok := safeDetails[pt]; ok {
		return d
	}
	return pt.Title
}
