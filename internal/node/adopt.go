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
//
// On NATS adoption is kept, in both modes, though it catches less than on
// Kafka or RabbitMQ: a node's reply subject is core NATS even in jetstream
// mode, and the server keeps no reply published while nobody subscribes.
// The replies published between the node's death and the adoption (about
// one to two lease TTLs) are lost, and their requests end at their
// deadline; those published after it (requests the services were still
// handling, typically long async ones) are stored and served to the polls,
// where they would otherwise be lost too. It costs a subscription per dead
// node, and the node coming back under its id consumes its subject again
// once the adopter let go (gateway.AwaitHandBack, then the inbox probe).
// TestClusterAdoptsOnNATS shows all three.
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
