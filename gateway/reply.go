package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

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
	numReplyOutcomes
)

var replyOutcomeNames = [numReplyOutcomes]string{"delivered", "stored", "duplicate", "orphan", "invalid", "cancelled"}

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
func (g *Gateway) DispatchReply(ctx context.Context, m brokers.Message) (ReplyOutcome, error) {
	rep, err := envelope.DecodeReply(m)
	if err != nil {
		g.log.WarnContext(ctx, "dropping invalid reply", slog.Any("error", err), slog.Int("body_bytes", len(m.Body)))
		return ReplyInvalid, nil
	}
	if g.registry.Deliver(rep) {
		return ReplyDelivered, nil
	}
	switch err := g.store.Complete(ctx, rep); {
	case err == nil:
		g.hub.notify(rep.CorrelationID)
		return ReplyStored, nil
	case errors.Is(err, correlation.ErrCancelled):
		g.log.InfoContext(ctx, "discarding the reply of a cancelled request", slog.String("correlation_id", rep.CorrelationID))
		return ReplyCancelled, nil
	case errors.Is(err, correlation.ErrCompleted):
		g.log.DebugContext(ctx, "dropping duplicate reply", slog.String("correlation_id", rep.CorrelationID))
		return ReplyDuplicate, nil
	case errors.Is(err, correlation.ErrNotFound):
		g.log.DebugContext(ctx, "dropping reply nobody waits for", slog.String("correlation_id", rep.CorrelationID))
		return ReplyOrphan, nil
	default:
		return ReplyStored, fmt.Errorf("gateway: store reply %s: %w", rep.CorrelationID, err)
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
func (g *Gateway) ReplyCounts() map[ReplyOutcome]uint64 {
	m := make(map[ReplyOutcome]uint64, numReplyOutcomes)
	for i := range g.replies {
		m[ReplyOutcome(i)] = g.replies[i].Load()
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
