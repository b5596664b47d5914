package gateway

import (
	"context"
	"time"

	"github.com/syncgate/syncgate/correlation"
)

// Service is what the use case offers its callers: run a request, read,
// await and cancel a result. *Gateway implements it; the HTTP layer
// (api.Gateway) consumes it and the metrics decorator
// (instrument.Ports) wraps it, both through this one definition.
type Service interface {
	// Do runs req. It completes req.Message as published (correlation
	// id, reply address, deadline, principal) and keeps no reference to
	// req after it returns. A pointer, not a copy: a waiting request's
	// stack holds every frame between the handler and the wait, and a
	// Request is large (issue 17).
	Do(ctx context.Context, req *Request) (Outcome, error)
	// Result, Await and Cancel act for principal, the authenticated
	// caller ("" when anonymous): a request another principal made
	// answers ErrNotFound, exactly as an unknown id (an anonymous request
	// is anybody's; see correlation.Result.VisibleTo).
	Result(ctx context.Context, id, principal string) (correlation.Result, error)
	Await(ctx context.Context, id, principal string, d time.Duration) (correlation.Result, error)
	// Events is Await for an event stream: it also returns on a progress
	// message after sequence number after, which the result holds.
	Events(ctx context.Context, id, principal string, after int, d time.Duration) (correlation.Result, error)
	// Watch is called when an event stream of id opens, before its first
	// Events: in cluster mode, the nodes that store its events then wake
	// this one.
	Watch(ctx context.Context, id string)
	Cancel(ctx context.Context, id, principal string) error
}

var _ Service = (*Gateway)(nil)
