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
	Do(ctx context.Context, req Request) (Outcome, error)
	Result(ctx context.Context, id string) (correlation.Result, error)
	Await(ctx context.Context, id string, d time.Duration) (correlation.Result, error)
	Cancel(ctx context.Context, id string) error
}

var _ Service = (*Gateway)(nil)
