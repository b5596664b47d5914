package gateway

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
)

// Router routes replies between gateway nodes in cluster mode: it records
// which node waits for which request and forwards a reply to that node.
// correlation/redis.Router implements it.
type Router interface {
	// Claim records that node waits for id, for ttl.
	Claim(ctx context.Context, id, node string, ttl time.Duration) error
	// Owner returns the node that claimed id, or correlation.ErrNoOwner.
	Owner(ctx context.Context, id string) (string, error)
	// Forward hands rep to node; delivered is false when the node is gone.
	// Delivery is at most once.
	Forward(ctx context.Context, node string, rep envelope.Reply) (delivered bool, err error)
}

// pendingClaimer is a Router that also writes the Store's pending record
// with the claim, in one round trip (correlation/redis.Router, whose Store
// shares its client and prefix).
type pendingClaimer interface {
	ClaimPending(ctx context.Context, id, node string, ttl, pendingTTL time.Duration) error
}

// ownerForwarder is a Router that looks the owner up and forwards in one
// round trip (correlation/redis.Router).
type ownerForwarder interface {
	ForwardToOwner(ctx context.Context, from string, rep envelope.Reply) (owner string, delivered bool, err error)
}

// Cluster makes a gateway one node of several sharing a Router and a Store
// (Redis): a reply consumed by another node is forwarded to the node holding
// the request, and a reply for a pollable route is stored before it is
// forwarded, so that a lost forward still ends in the store.
type Cluster struct {
	// Node is this node's id, as claimed in the Router.
	Node string
	// Router may also implement ClaimPending(ctx, id, node, ttl,
	// pendingTTL) to write the Store's pending record with the claim in one
	// round trip; it must then write the very record Store.Pending would.
	Router Router
	// ClaimMargin is added to a request's budget for how long its claim
	// lives (default 5 s): a reply that comes a little late still finds
	// its node.
	ClaimMargin time.Duration
}

// Cluster errors, counted by operation (see ClusterErrors).
const (
	opClaim = iota
	opPending
	opStore
	opOwner
	opForward
	numClusterOps
)

var clusterOpNames = [numClusterOps]string{"claim", "pending", "store", "owner", "forward"}

// ClusterOps lists the operations ClusterErrors counts, for metrics that
// pre-declare labels.
func ClusterOps() []string { return clusterOpNames[:] }

// ClusterErrors returns how many Router and Store calls failed in cluster
// mode, by operation: claim, pending, store, owner, forward. While Redis is
// down they rise and the node degrades (see the README).
func (g *Gateway) ClusterErrors() map[string]uint64 {
	m := make(map[string]uint64, numClusterOps)
	for i, n := range clusterOpNames {
		m[n] = g.clusterErrs[i].Load()
	}
	return m
}

func (g *Gateway) clusterErr(ctx context.Context, op int, id string, err error) {
	g.clusterErrs[op].Add(1)
	g.log.WarnContext(ctx, "cluster: "+clusterOpNames[op]+" failed; degraded",
		slog.String("correlation_id", id), slog.Any("error", err))
}

// clusterBegin runs before a waited-for request is published: the pollable
// record first (so a reply consumed by another node can be stored), then
// the claim (so it can be forwarded here). Redis being down degrades rather
// than fails: the reply normally comes back to this node directly.
func (g *Gateway) clusterBegin(ctx context.Context, r *Route, id string, keyed bool) {
	c := g.cfg.Cluster
	if cp, ok := c.Router.(pendingClaimer); ok && r.Pollable() && !keyed {
		if err := cp.ClaimPending(ctx, id, c.Node, r.Timeout+c.ClaimMargin, r.Timeout); err != nil {
			g.clusterErr(ctx, opClaim, id, err)
		}
		return
	}
	if r.Pollable() && !keyed {
		if err := g.store.Pending(ctx, id, r.Timeout); err != nil {
			g.clusterErr(ctx, opPending, id, err)
		}
	}
	if err := c.Router.Claim(ctx, id, c.Node, r.Timeout+c.ClaimMargin); err != nil {
		g.clusterErr(ctx, opClaim, id, err)
	}
}

// storedReply returns the reply another node stored for id, if any: the
// wait ended, but the forward may have been lost on its way.
func (g *Gateway) storedReply(ctx context.Context, id string) (envelope.Reply, bool) {
	res, err := g.store.Get(ctx, id)
	if err != nil || res.State != correlation.StateDone {
		return envelope.Reply{}, false
	}
	return res.Reply, true
}

// route handles a reply no request on this node waits for, in cluster
// mode: store it when its request is pollable, then forward it to the node
// that claimed it. The waiting node takes whichever comes first.
func (g *Gateway) route(ctx context.Context, rep envelope.Reply) ReplyOutcome {
	// Once taken from the broker, a reply is carried through even if its
	// consumer is stopping (an adoption ending, a shutdown): the broker
	// counts it handled either way. Redis' own timeouts bound the calls.
	ctx = context.WithoutCancel(ctx)
	id := rep.CorrelationID
	out, err := g.complete(ctx, rep)
	switch {
	case err != nil:
		g.clusterErr(ctx, opStore, id, err)
	case out == ReplyCancelled || out == ReplyDuplicate:
		return out
	}
	// Orphan here means not pollable (or unknown): forwarding is the only
	// way; stored, that the owner may still want it sooner than its poll.
	stored := err == nil && out == ReplyStored
	c := g.cfg.Cluster
	if of, ok := c.Router.(ownerForwarder); ok {
		owner, delivered, err := of.ForwardToOwner(ctx, c.Node, rep)
		return g.forwarded(ctx, id, owner, delivered, err, opForward, stored)
	}
	owner, err := c.Router.Owner(ctx, id)
	if err != nil || owner == c.Node {
		return g.forwarded(ctx, id, owner, false, err, opOwner, stored)
	}
	delivered, err := c.Router.Forward(ctx, owner, rep)
	return g.forwarded(ctx, id, owner, delivered, err, opForward, stored)
}

// forwarded classifies the end of route: no owner, owner is this node, a
// Redis failure (counted as op), owner gone, or forwarded.
func (g *Gateway) forwarded(ctx context.Context, id, owner string, delivered bool, err error, op int, stored bool) ReplyOutcome {
	notForwarded := func() ReplyOutcome {
		if stored {
			return ReplyStored
		}
		return ReplyOrphan
	}
	switch {
	case errors.Is(err, correlation.ErrNoOwner):
		return notForwarded()
	case err != nil:
		g.clusterErr(ctx, op, id, err)
		if stored {
			return ReplyStored
		}
		return ReplyLost
	case owner == g.cfg.Cluster.Node:
		// Claimed here, but nobody waits any more (Deliver failed).
		return notForwarded()
	}
	if !delivered {
		// The owner is gone: what was stored is all that is left.
		g.log.InfoContext(ctx, "cluster: the node holding the request is gone",
			slog.String("correlation_id", id), slog.String("owner", owner), slog.Bool("stored", stored))
		return notForwarded()
	}
	return ReplyForwarded
}

// AcceptForwarded takes a reply another node forwarded here: it goes to
// the waiting request, or, when the wait has ended, to the store (where
// the forwarding node may have put it already). It never blocks for long:
// at most one store call.
func (g *Gateway) AcceptForwarded(ctx context.Context, rep envelope.Reply) ReplyOutcome {
	out := g.acceptForwarded(ctx, rep)
	g.forwards[out].Add(1)
	return out
}

func (g *Gateway) acceptForwarded(ctx context.Context, rep envelope.Reply) ReplyOutcome {
	ctx = context.WithoutCancel(ctx) // as in route: pub/sub delivered it once

	if g.registry.Deliver(rep) {
		return ReplyDelivered
	}
	out, err := g.complete(ctx, rep)
	switch {
	case err != nil:
		g.clusterErr(ctx, opStore, rep.CorrelationID, err)
		return ReplyLost
	case out == ReplyDuplicate:
		// The forwarding node stored it before forwarding (pollable
		// route): a late reply, not a second one. (Duplicates are caught
		// on the consuming node, which does not forward them.)
		return ReplyStored
	}
	return out
}

// ForwardCounts returns how many forwarded replies AcceptForwarded took, by
// outcome.
func (g *Gateway) ForwardCounts() map[ReplyOutcome]uint64 { return outcomeCounts(&g.forwards) }
