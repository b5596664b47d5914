package responder

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/syncgate/syncgate/brokers/envelope"
)

// ErrNoRequest: Progress was called with a context that is not a
// handler's (see Progress).
var ErrNoRequest = errors.New("responder: progress: the context is not a handler's")

type progressKey struct{}

// progressTo is what Progress needs of the request being handled.
type progressTo struct {
	s   *Service
	req *Request
}

// Progress sends an interim progress message for the request whose
// handler ctx was given to (or a context derived from it), before its
// reply: a service may send any number. The gateway keeps the latest for
// the request's poll (its 202 body) and streams each as an event to
// callers following the request (GET /v1/requests/{id} with Accept:
// text/event-stream); a request that holds its connection ignores them.
//
// A progress message is best effort: one publish attempt, bounded by
// ReplyTimeout and the request's deadline; the error says it failed, and
// the handler goes on. Progress messages of one request arrive in the
// order they were sent where the broker keeps order (a Kafka partition, a
// RabbitMQ queue); the reply is sent after them.
func Progress(ctx context.Context, contentType string, body []byte) error {
	to, ok := ctx.Value(progressKey{}).(progressTo)
	if !ok {
		return ErrNoRequest
	}
	rep := Reply{CorrelationID: to.req.CorrelationID, ContentType: contentType, Body: body, Progress: true}
	rep.TraceParent, rep.TraceState = to.req.TraceParent, to.req.TraceState
	if to.s.Tracer != nil && to.s.Propagator != nil {
		c := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(ctx, c)
		if tp := c[envelope.TraceParent]; tp != "" {
			rep.TraceParent, rep.TraceState = tp, c[envelope.TraceState]
		}
	}
	timeout := to.s.ReplyTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := to.s.Publisher.Publish(pctx, to.req.ReplyTo, rep.Message()); err != nil {
		return fmt.Errorf("responder: progress of %s: %w", to.req.CorrelationID, err)
	}
	return nil
}
