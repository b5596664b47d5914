package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
)

// ReplyOutcome classifies what became of one reply message.
type ReplyOutcome int

const (
	// ReplyDelivered: handed to the request waiting on this node.
	ReplyDelivered ReplyOutcome = iota
	// ReplyStored: nobody waited any more (202 given); stored for polling.
	ReplyStored
	// ReplyDuplicate: a reply for this id is stored already; dropped.
	ReplyDuplicate
	// ReplyOrphan: unknown or expired id (or a sync route's late reply); dropped.
	ReplyOrphan
	// ReplyInvalid: no or a malformed correlation id, bad status or headers; dropped.
	ReplyInvalid
	// ReplyCancelled: the request was cancelled (DELETE); discarded.
	ReplyCancelled
	// ReplyForwarded (cluster mode): handed to the node holding the request.
	ReplyForwarded
	// ReplyLost (cluster mode): Redis was down, so the reply could be
	// neither stored nor forwarded; dropped with an error log. Its request
	// ends at its deadline (202 stays pending, or 504).
	ReplyLost
	numReplyOutcomes
)

var replyOutcomeNames = [numReplyOutcomes]string{"delivered", "stored", "duplicate", "orphan", "invalid", "cancelled", "forwarded", "lost"}

func (o ReplyOutcome) String() string {
	if o >= 0 && o < numReplyOutcomes {
		return replyOutcomeNames[o]
	}
	return "unknown"
}

// DispatchReply routes one reply message: to its waiter, else to the store.
// Invalid messages are logged and dropped (nil error, so the broker does not
// redeliver garbage forever). An error means the store failed and the broker
// should redeliver.
//
// In cluster mode a reply nobody waits for on this node is stored (if its
// request is pollable) and forwarded to the node that claimed it; Redis
// failures are counted and logged, never returned, so that an outage does
// not stall the replies this node can still deliver itself.
func (g *Gateway) DispatchReply(ctx context.Context, m brokers.Message) (ReplyOutcome, error) {
	rep, err := envelope.DecodeReply(m)
	if err != nil {
		g.log.WarnContext(ctx, "dropping invalid reply", slog.Any("error", err), slog.Int("body_bytes", len(m.Body)))
		return ReplyInvalid, nil
	}
	if g.registry.Deliver(rep) {
		return ReplyDelivered, nil
	}
	if g.cfg.Cluster != nil {
		out := g.route(ctx, rep)
		if out == ReplyLost {
			g.log.ErrorContext(ctx, "cluster: reply dropped: Redis is unavailable, so it can be neither stored nor forwarded",
				slog.String("correlation_id", rep.CorrelationID))
		}
		return out, nil
	}
	out, err := g.complete(ctx, rep)
	if err != nil {
		return out, fmt.Errorf("gateway: store reply %s: %w", rep.CorrelationID, err)
	}
	return out, nil
}

// complete stores a reply nobody waits for on this node and classifies
// what became of it: stored (its waiters woken), cancelled, duplicate
// (stored already) or orphan (no record: unknown, expired, or a route that
// is not pollable). An error is a failure of the store itself.
func (g *Gateway) complete(ctx context.Context, rep envelope.Reply) (ReplyOutcome, error) {
	id := rep.CorrelationID
	switch err := g.store.Complete(ctx, rep); {
	case err == nil:
		g.hub.notify(id)
		return ReplyStored, nil
	case errors.Is(err, correlation.ErrCancelled):
		g.log.InfoContext(ctx, "discarding the reply of a cancelled request", slog.String("correlation_id", id))
		return ReplyCancelled, nil
	case errors.Is(err, correlation.ErrCompleted):
		g.log.DebugContext(ctx, "reply stored already", slog.String("correlation_id", id))
		return ReplyDuplicate, nil
	case errors.Is(err, correlation.ErrNotFound):
		g.log.DebugContext(ctx, "no stored request for the reply", slog.String("correlation_id", id))
		return ReplyOrphan, nil
	default:
		return ReplyStored, err
	}
}

// ReplyHandler adapts DispatchReply to a brokers.Handler for the node's reply
// subscription and counts the outcomes (see ReplyCounts).
func (g *Gateway) ReplyHandler() brokers.Handler {
	return func(ctx context.Context, m brokers.Message) error {
		out, err := g.DispatchReply(ctx, m)
		if err == nil {
			g.replies[out].Add(1)
		}
		return err
	}
}

// ReplyCounts returns how many replies ReplyHandler saw, by outcome.
func (g *Gateway) ReplyCounts() map[ReplyOutcome]uint64 { return outcomeCounts(&g.replies) }

func outcomeCounts(c *[numReplyOutcomes]atomic.Uint64) map[ReplyOutcome]uint64 {
	m := make(map[ReplyOutcome]uint64, numReplyOutcomes)
	for i := range c {
		m[ReplyOutcome(i)] = c[i].Load()
	}
	return m
}

// ReplyOutcomes lists every outcome, for metrics that pre-declare labels.
func ReplyOutcomes() []ReplyOutcome {
	out := make([]ReplyOutcome, numReplyOutcomes)
	for i := range out {
		out[i] = ReplyOutcome(i)
	}
	return out
}
