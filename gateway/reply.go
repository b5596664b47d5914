package gateway

import (
	"context"
	"errors"
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
	// ReplyDuplicate: a reply for this id was delivered, stored or
	// forwarded already (by this node, recently; or it is in the store);
	// dropped.
	ReplyDuplicate
	// ReplyOrphan: unknown or expired id (or a sync route's late reply); dropped.
	ReplyOrphan
	// ReplyInvalid: the reply broke the contract. With a valid correlation
	// id, a 502 invalid-reply problem took its place (delivered, stored or
	// forwarded like any reply); without one, it was dropped.
	ReplyInvalid
	// ReplyCancelled: the request was cancelled (DELETE); discarded.
	ReplyCancelled
	// ReplyForwarded (cluster mode): handed to the node holding the request.
	ReplyForwarded
	// ReplyLost (cluster mode): Redis was down, so the reply could be
	// neither stored nor forwarded; dropped with an error log. Its request
	// ends at its deadline (202 stays pending, or 504).
	ReplyLost
	// ReplyProgress: a progress message, kept for the request's polls and
	// event streams (or held with its waiter until it is answered 202).
	ReplyProgress
	// ReplyProgressIgnored: a progress message nobody can see (a request
	// that holds its connection to the end, unknown, ended or expired; an
	// invalid one; the store full or down); dropped.
	ReplyProgressIgnored
	// ReplyUnneeded: the reply of a scatter-gather part whose request was
	// answered without it (gather any or quorum decided, or a sync
	// route's timeout passed); dropped. Not an orphan: it was asked for.
	ReplyUnneeded
	numReplyOutcomes
)

var replyOutcomeNames = [numReplyOutcomes]string{"delivered", "stored", "duplicate", "orphan", "invalid", "cancelled", "forwarded", "lost",
	"progress", "progress_ignored", "unneeded"}

func (o ReplyOutcome) String() string {
	if o >= 0 && o < numReplyOutcomes {
		return replyOutcomeNames[o]
	}
	return "unknown"
}

// DispatchReply routes one reply message: to its waiter, else to the store.
// An error means the store failed and the broker should redeliver.
//
// A reply that breaks the contract (envelope.DecodeReply) but carries a
// valid correlation id still answers its request: in its place a 502
// invalid-reply problem (envelope.FailureReply) is routed like any reply,
// so the caller learns at once instead of waiting out the timeout. The
// outcome is ReplyInvalid all the same (a service bug to count). A reply
// without a valid correlation id has nobody to answer: it is logged and
// dropped. Neither is an error, so the broker does not redeliver garbage.
//
// A second reply for an id answered recently on this node (see recent) is
// ReplyDuplicate, whether the first went to a waiter or to the store.
//
// In cluster mode a reply nobody waits for on this node is stored (if its
// request is pollable) and forwarded to the node that claimed it; Redis
// failures are counted and logged, never returned, so that an outage does
// not stall the replies this node can still deliver itself.
func (g *Gateway) DispatchReply(ctx context.Context, m brokers.Message) (ReplyOutcome, error) {
	rep, err := envelope.DecodeReply(m)
	if err != nil {
		if envelope.IsProgress(m) {
			g.log.WarnContext(ctx, "dropping an invalid progress message", slog.Any("error", err),
				slog.String("correlation_id", m.Headers[envelope.CorrelationID]), slog.Int("body_bytes", len(m.Body)))
			return ReplyProgressIgnored, nil
		}
		return g.dispatchInvalid(ctx, m, err)
	}
	if rep.Progress {
		return g.progress(ctx, rep), nil
	}
	return g.dispatch(ctx, rep)
}

// dispatchInvalid handles a reply DecodeReply refused with err.
func (g *Gateway) dispatchInvalid(ctx context.Context, m brokers.Message, err error) (ReplyOutcome, error) {
	id, idErr := envelope.ValidateID(m.Headers[envelope.CorrelationID])
	if idErr != nil {
		g.log.WarnContext(ctx, "dropping a reply without a valid correlation id",
			slog.Any("error", err), slog.Int("body_bytes", len(m.Body)))
		return ReplyInvalid, nil
	}
	failure := envelope.FailureReply(id, envelope.FailureInvalidReply,
		"the service's reply was refused: "+envelope.InvalidReason(err))
	out, derr := g.dispatch(ctx, failure)
	if derr != nil {
		return ReplyInvalid, derr
	}
	g.log.WarnContext(ctx, "invalid reply: its request is answered with a 502 invalid-reply problem",
		slog.String("correlation_id", id), slog.Any("error", err), slog.Int("body_bytes", len(m.Body)),
		slog.String("failure_reply", out.String()))
	return ReplyInvalid, nil
}

// dispatch routes a decoded reply (or a failure standing in for one).
func (g *Gateway) dispatch(ctx context.Context, rep envelope.Reply) (ReplyOutcome, error) {
	id := rep.CorrelationID
	if g.registry.Deliver(rep) {
		g.answered.add(id)
		return ReplyDelivered, nil
	}
	if g.answered.has(id) {
		g.log.DebugContext(ctx, "second reply for a request answered already", slog.String("correlation_id", id))
		return ReplyDuplicate, nil
	}
	if g.unneeded.has(id) {
		return ReplyUnneeded, nil
	}
	return g.place.unwaited(ctx, rep)
}

// complete stores a reply nobody waits for on this node and classifies
// what became of it: stored (its waiters woken), cancelled, duplicate
// (stored already) or orphan (no record: unknown, expired, or a route that
// is not pollable). An error is a failure of the store itself.
func (g *Gateway) complete(ctx context.Context, rep envelope.Reply) (ReplyOutcome, error) {
	id := rep.CorrelationID
	switch err := g.store.Complete(ctx, rep); {
	case err == nil:
		g.answered.add(id)
		g.hub.notify(id)
		g.partStored(ctx, id)
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
