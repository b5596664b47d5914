package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/outbox"
)

// ErrOutboxFull: a route with an outbox could not hand a request to the
// broker, and the outbox holds as many as it may (503 with Retry-After).
var ErrOutboxFull = errors.New("gateway: outbox full")

// Outbox keeps the requests of routes with Route.Outbox that the broker
// could not take, for a relay to publish once it is back (outbox.Relay).
// outbox.PG and outbox.Bolt implement it.
type Outbox interface {
	// Put queues it: outbox.ErrFull when there is no room,
	// outbox.ErrExists when its id is queued already.
	Put(ctx context.Context, it outbox.Item) error
	// Has reports whether id is queued (a poll says "queued").
	Has(ctx context.Context, id string) (bool, error)
}

// enqueue hands a request the broker did not take (pubErr, from publish)
// for a reason that passes (outbox.Retriable: unavailable, timed out; not
// an unroutable destination or a message too large, which would wait in
// the queue for ever) to the outbox, when its route has one: the request is answered 202 and
// its record says it is queued. It reports false, with the error to
// answer, when the request is not queued: pubErr itself when the route has
// no outbox or the outbox failed, ErrOutboxFull when it is full.
//
// The request has its pending record before it is queued (a relay may
// publish it at once and its reply come back): an async request's is
// written before the publish (makeRoom), a keyed one's when its key was
// bound; an auto request's is written here.
func (c *call) enqueue(ctx context.Context, pubErr error) (bool, error) {
	g := c.g
	if !c.r.Outbox || !c.r.Pollable() || g.cfg.Outbox == nil || !outbox.Retriable(pubErr) || ctx.Err() != nil {
		return false, pubErr
	}
	ctx = context.WithoutCancel(ctx) // queued or not, carried through
	wrote := !c.async && !c.keyed
	if wrote {
		if err := g.promise(ctx, c.out.ID, c.req.Principal, max(time.Until(c.deadline), time.Second)); err != nil {
			g.log.WarnContext(ctx, "outbox: no record for a request the broker did not take; answering 503",
				slog.String("correlation_id", c.out.ID), slog.Any("error", err))
			return false, pubErr
		}
	}
	it := outbox.Item{ID: c.out.ID, Dest: c.r.Destination, Message: c.msg, Queued: time.Now(), Deadline: c.deadline}
	if err := g.cfg.Outbox.Put(ctx, it); err != nil && !errors.Is(err, outbox.ErrExists) {
		if wrote {
			_ = g.store.Delete(ctx, c.out.ID)
		}
		if errors.Is(err, outbox.ErrFull) {
			return false, fmt.Errorf("%w: %w (%w)", ErrOutboxFull, err, pubErr)
		}
		g.log.WarnContext(ctx, "outbox: queueing a request the broker did not take failed; answering 503",
			slog.String("correlation_id", c.out.ID), slog.Any("error", err))
		return false, pubErr
	}
	if !c.async {
		// An async request's callback was recorded before its publish.
		if err := c.setCallback(ctx); err != nil && !errors.Is(err, correlation.ErrCompleted) {
			g.log.WarnContext(ctx, "recording the callback of a queued request failed: it may not be called back",
				slog.String("correlation_id", c.out.ID), slog.Any("error", err))
		}
	}
	c.out.Accepted, c.out.Queued = true, true
	return true, nil
}

// queued marks res, the record of id, Queued when its request waits in
// the outbox (an outbox that fails to say leaves it pending).
func (g *Gateway) queued(ctx context.Context, id string, res *correlation.Result) {
	if g.cfg.Outbox == nil || res.State != correlation.StatePending {
		return
	}
	if ok, err := g.cfg.Outbox.Has(ctx, id); err == nil {
		res.Queued = ok
	}
}

// Refused answers the queued request id that the outbox's relay dropped
// because the broker refused it for good (outbox.Relay.Failed): its record
// gets a 502 broker-refused problem in place of a reply, so that its polls,
// streams and callback learn now rather than at its deadline.
func (g *Gateway) Refused(ctx context.Context, id string) {
	rep := envelope.FailureReply(id, envelope.FailureRefused,
		"the request was queued while the broker was down, and the broker then refused it for good")
	if _, err := g.dispatch(ctx, rep); err != nil {
		g.log.WarnContext(ctx, "outbox: answering a request the broker refused failed; it stays pending until its deadline",
			slog.String("correlation_id", id), slog.Any("error", err))
	}
}
