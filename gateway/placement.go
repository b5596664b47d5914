package gateway

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/syncgate/syncgate/brokers/envelope"
)

// placement is what differs between a node alone and a node of a cluster,
// so that the use case (Do, dispatch, long polls) has one path. New picks
// the implementation once: alone without Config.Cluster, member with it.
type placement interface {
	// begin runs before a waited-for request is published.
	begin(ctx context.Context, r *Route, id, principal string, keyed bool)
	// unpublished undoes begin when the publish failed.
	unpublished(ctx context.Context, r *Route, id string, keyed bool)
	// storedElsewhere returns a reply stored for id by another node, after
	// the wait ended without one and before the 202.
	storedElsewhere(ctx context.Context, id string) (envelope.Reply, bool)
	// unwaited handles a reply no request on this node waits for. An
	// error is one the broker should redeliver the reply for.
	unwaited(ctx context.Context, rep envelope.Reply) (ReplyOutcome, error)
	// recheck reports whether a long poll must read the store again by
	// itself: another node may store the reply, and nothing wakes this one.
	recheck() bool
	// progressed runs after a progress message for id was stored.
	progressed(ctx context.Context, id string)
}

// alone is a node by itself: replies come back to it, results are in its
// store, nothing to claim or forward.
type alone struct{ g *Gateway }

func (alone) begin(context.Context, *Route, string, string, bool) {}
func (alone) unpublished(context.Context, *Route, string, bool)   {}
func (alone) storedElsewhere(context.Context, string) (envelope.Reply, bool) {
	return envelope.Reply{}, false
}
func (alone) recheck() bool                      { return false }
func (alone) progressed(context.Context, string) {}

func (a alone) unwaited(ctx context.Context, rep envelope.Reply) (ReplyOutcome, error) {
	out, err := a.g.complete(ctx, rep)
	if err != nil {
		return out, fmt.Errorf("gateway: store reply %s: %w", rep.CorrelationID, err)
	}
	return out, nil
}

// member is a node of a cluster (see Cluster and cluster.go).
type member struct{ g *Gateway }

func (m member) begin(ctx context.Context, r *Route, id, principal string, keyed bool) {
	m.g.clusterBegin(ctx, r, id, principal, keyed)
}

// unpublished removes the pending record begin wrote with the claim.
func (m member) unpublished(ctx context.Context, r *Route, id string, keyed bool) {
	if r.Pollable() && !keyed {
		_ = m.g.store.Delete(context.WithoutCancel(ctx), id)
	}
}

// storedElsewhere: another node may have stored the reply and lost the
// forward.
func (m member) storedElsewhere(ctx context.Context, id string) (envelope.Reply, bool) {
	return m.g.storedReply(ctx, id)
}

func (member) recheck() bool { return true }

func (member) progressed(context.Context, string) {}

// unwaited stores and forwards (route); Redis being down loses the reply,
// which is logged, not redelivered: the broker cannot help.
func (m member) unwaited(ctx context.Context, rep envelope.Reply) (ReplyOutcome, error) {
	out := m.g.route(ctx, rep)
	if out == ReplyLost {
		m.g.log.ErrorContext(ctx, "cluster: reply dropped: Redis is unavailable, so it can be neither stored nor forwarded",
			slog.String("correlation_id", rep.CorrelationID))
	}
	return out, nil
}
