package gateway

import (
	"context"
	"errors"
	"log/slog"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
)

// MaxProgressBody bounds a progress message's body: a record keeps 16 of
// them (correlation.MaxProgressKept), in memory or in Redis, for as long as
// the result. A larger one is dropped.
const MaxProgressBody = 64 << 10

// progress keeps a progress message for its request's polls and event
// streams: with the request's waiter when it waits on this node (it stores
// what it holds if it is answered 202 after all: keepHeldProgress), else
// in the store when the request has a record. The waiter comes first so
// that messages are stored in the order they came: once a waiter takes no
// more, everything it held has been stored. Nothing is redelivered:
// progress is best effort, and a store failure is logged.
func (g *Gateway) progress(ctx context.Context, rep envelope.Reply) ReplyOutcome {
	ctx = context.WithoutCancel(ctx) // as for replies: taken from the broker once
	if len(rep.Body) > MaxProgressBody {
		g.log.WarnContext(ctx, "dropping a progress message larger than the limit",
			slog.String("correlation_id", rep.CorrelationID), slog.Int("body_bytes", len(rep.Body)), slog.Int("limit", MaxProgressBody))
		return ReplyProgressIgnored
	}
	if g.registry.HoldProgress(rep) {
		return ReplyProgress
	}
	if out := g.storeProgress(ctx, rep); out != ReplyOrphan {
		return out
	}
	return ReplyProgressIgnored
}

// storeProgress stores a progress message; ReplyOrphan means its request
// has no record.
func (g *Gateway) storeProgress(ctx context.Context, rep envelope.Reply) ReplyOutcome {
	id := rep.CorrelationID
	_, err := g.store.Progress(ctx, id, correlation.Progress{ContentType: rep.ContentType, Body: rep.Body})
	switch {
	case err == nil:
		g.hub.notify(id)
		g.place.progressed(ctx, id)
		return ReplyProgress
	case errors.Is(err, correlation.ErrNotFound):
		return ReplyOrphan
	case errors.Is(err, correlation.ErrCompleted), errors.Is(err, correlation.ErrCancelled):
		g.log.DebugContext(ctx, "dropping a progress message of a request that has ended", slog.String("correlation_id", id))
	case errors.Is(err, correlation.ErrFull):
		g.log.WarnContext(ctx, "dropping a progress message: the result store is full", slog.String("correlation_id", id))
	default:
		g.log.WarnContext(ctx, "dropping a progress message: the result store failed",
			slog.String("correlation_id", id), slog.Any("error", err))
	}
	return ReplyProgressIgnored
}

// keepHeldProgress stores the progress message w held while its request
// waited, now that the request has a record; see Waiter.TakeProgress.
func (g *Gateway) keepHeldProgress(ctx context.Context, w *correlation.Waiter) {
	// Bounded: each round stores a message the consumer held after the
	// previous one, and the consumer is one message at a time per id.
	for p := w.TakeProgress(); p != nil; p = w.TakeProgress() {
		g.storeProgress(ctx, *p)
	}
}
