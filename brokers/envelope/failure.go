package envelope

import (
	"encoding/json"
	"strings"
)

// Failure kinds: the problem types of the failure replies that stand in for
// a service's reply when there will be none (see FailureReply). Their URIs
// are urn:syncgate:problem:<kind>, like the gateway's own problems.
const (
	// FailureInvalidReply: the service replied to a known request, but its
	// reply broke the contract (a status that is not an HTTP status, a
	// header that cannot be written); the gateway answers this instead.
	FailureInvalidReply = "invalid-reply"
	// FailureDeadLettered: the service failed on the request on every
	// attempt the broker allows, and the request went to the dead-letter
	// destination; the service side answers this instead.
	FailureDeadLettered = "dead-lettered"
	// FailureRefused: the request waited in the gateway's outbox while
	// the broker was down, and the broker then refused it for good (an
	// unroutable destination, a message too large); the gateway answers
	// this instead.
	FailureRefused = "broker-refused"
)

// statusBadGateway is HTTP's 502, spelled out so that the wire contract
// (and the gateway, which imports it) does not link net/http.
const statusBadGateway = 502

var failureTitles = map[string]string{
	FailureInvalidReply: "The service's reply was invalid",
	FailureDeadLettered: "The service could not process the request",
	FailureRefused:      "The broker refused the request",
}

// FailureReply is a 502 reply whose body is an RFC 9457 problem of the
// given kind (FailureInvalidReply, FailureDeadLettered): what the caller
// gets, at once, for a request that will get no valid reply. detail is
// shown to the caller: it must name no internals (hosts, stack traces).
func FailureReply(id, kind, detail string) Reply {
	title := failureTitles[kind]
	if title == "" {
		title = "The service failed"
	}
	body, _ := json.Marshal(struct { // cannot fail: strings and ints only
		Type          string `json:"type"`
		Title         string `json:"title"`
		Status        int    `json:"status"`
		Detail        string `json:"detail,omitempty"`
		CorrelationID string `json:"correlation_id"`
	}{"urn:syncgate:problem:" + kind, title, statusBadGateway, detail, id})
	return Reply{
		CorrelationID: id,
		Status:        statusBadGateway,
		ContentType:   "application/problem+json",
		Body:          body,
	}
}

// InvalidReason returns what a validation error of this package says was
// wrong ("status \"abc\" is not an HTTP status code"), without the package's
// prefix: text fit for the detail of a FailureInvalidReply, since it quotes
// only what the message itself carried (truncated), never internals.
func InvalidReason(err error) string {
	s := err.Error()
	if r, ok := strings.CutPrefix(s, ErrInvalid.Error()+": "); ok {
		return r
	}
	return s
}
