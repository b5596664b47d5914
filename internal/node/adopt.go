package node

import (
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/gateway"
)

// newAdopter wires the adoption of dead nodes' reply addresses (cluster
// mode; the policy is gateway.Adopter): rounds every lease TTL, adoptions
// kept until no request of the dead node can still be waiting (the
// longest route timeout plus the claim margin), replies consumed with the
// node's own handler h.
func (n *Node) newAdopter(h brokers.Handler) *gateway.Adopter {
	longest := time.Duration(0)
	for _, r := range n.cfg.Routes {
		longest = max(longest, r.Timeout)
	}
	return gateway.NewAdopter(gateway.AdopterConfig{
		Node: n.cfg.Node, Members: n.router, Subscriber: n.broker, Handler: h,
		Every: n.cfg.Cluster.LeaseTTL, Keep: n.cfg.Cluster.ClaimMargin + longest,
		Concurrency: n.cfg.Broker.ReplyConcurrency,
		Logger:      n.log,
	})
}
