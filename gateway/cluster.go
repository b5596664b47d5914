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
// correlation/redisstate.Router implements it, each call one Redis round trip.
type Router interface {
	// Claim records that node waits for id, for ttl.
	Claim(ctx context.Context, id, node string, ttl time.Duration) error
	// ClaimPending is Claim plus the Store's Pending(id, principal,
	// pendingTTL): it must write the very record Store.Pending would.
	ClaimPending(ctx context.Context, id, node, principal string, ttl, pendingTTL time.Duration) error
	// ForwardToOwner hands rep to the node that claimed its id, unless
	// that is from itself: owner "" with correlation.ErrNoOwner when none
	// did; delivered false when the owner is from or is gone. Delivery is
	// at most once.
	ForwardToOwner(ctx context.Context, from string, rep envelope.Reply) (owner string, delivered bool, err error)
}

// Cluster makes a gateway one node of several sharing a Router and a Store
// (Redis): a reply consumed by another node is forwarded to the node holding
// the request, and a reply for a pollable route is stored before it is
// forwarded, so that a lost forward still ends in the store.
type Cluster struct {
	// Node is this node's id, as claimed in the Router.
	Node   string
	Router Router
	// ClaimMargin is added to a request's budget for how long its claim
	// lives (default 5 s): a reply that comes a little late still finds
	// its node.
	ClaimMargin time.Duration
}

// Cluster errors, counted by operation (see ClusterErrors).
const (
	opClaim = iota
	opStore
	opForward
	numClusterOps
)

var clusterOpNames = [numClusterOps]string{"claim", "store", "forward"}

// ClusterOps lists the operations ClusterErrors counts, for metrics that
// pre-declare labels.
func ClusterOps() []string { return clusterOpNames[:] }

// ClusterErrors returns how many Router and Store calls failed in cluster
// mode, by operation: claim, store, forward. While Redis is
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

// clusterBegin runs before a waited-for request is published: the claim (so
// a reply consumed by another node can be forwarded here) and, on a
// pollable route, the pending record (so that node can store it), in one
// round trip. Redis being down degrades rather than fails: the reply
// normally comes back to this node directly.
func (g *Gateway) clusterBegin(ctx context.Context, r *Route, id, principal string, keyed bool) {
	c := g.cfg.Cluster
	ttl := r.Timeout + c.ClaimMargin
	var err error
	if r.Pollable() && !keyed { // a keyed request has its record already
		err = c.Router.ClaimPending(ctx, id, c.Node, principal, ttl, r.Timeout)
	} else {
		err = c.Router.Claim(ctx, id, c.Node, ttl)
	}
	if err != nil {
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
	owner, delivered, err := g.cfg.Cluster.Router.ForwardToOwner(ctx, g.cfg.Cluster.Node, rep)
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
		g.clusterErr(ctx, opForward, id, err)
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
	g.answered.add(id)
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
	if rep.Progress {
		// A notify that a record this node watches changed (see Watch).
		g.hub.notify(rep.CorrelationID)
		return ReplyProgress
	}

	if g.registry.Deliver(rep) {
		g.answered.add(rep.CorrelationID)
		return ReplyDelivered
	}
	if g.unneeded.has(rep.CorrelationID) {
		return ReplyUnneeded
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

// watchingStore is a Store whose records can name the nodes that stream
// them, and that notifies those nodes when it stores an event
// (redisstate.Store, through the nodes' Router listeners).
type watchingStore interface {
	Watch(ctx context.Context, id, node string) error
}

// Watch tells the nodes of a cluster that this node streams the events of
// id, so that a node storing one wakes it at once (AcceptForwarded takes
// the notify); a stream that misses one reads the store again by itself
// within a few seconds. A no-op on a node alone, where the store and the
// wake-ups are local, and with a store that cannot (the in-process one).
func (g *Gateway) Watch(ctx context.Context, id string) {
	ws, ok := g.store.(watchingStore)
	if g.cfg.Cluster == nil || !ok {
		return
	}
	if _, err := envelope.ValidateID(id); err != nil {
		return
	}
	if err := ws.Watch(ctx, id, g.cfg.Cluster.Node); err != nil {
		g.log.DebugContext(ctx, "cluster: watching a request failed; its stream reads the store by itself", slog.String("correlation_id", id), slog.Any("error", err))
	}
}

// ForwardCounts returns how many forwarded replies AcceptForwarded took, by
// outcome.
func (g *Gateway) ForwardCounts() map[ReplyOutcome]uint64 { return outcomeCounts(&g.forwards) }
