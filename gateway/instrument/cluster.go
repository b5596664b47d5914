package instrument

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncgate/syncgate/gateway"
)

// ClusterCounts is what Cluster reads of a gateway in cluster mode.
type ClusterCounts interface {
	ForwardCounts() map[gateway.ReplyOutcome]uint64
	ClusterErrors() map[string]uint64
}

// Cluster exports a cluster node's counters:
// syncgate_forwarded_replies_total{outcome} (replies other nodes forwarded
// here, by what became of them) and syncgate_cluster_errors_total{op}
// (failed Redis calls: claim, store, forward). Every label
// is exported from the start, at 0.
func Cluster(g ClusterCounts, reg prometheus.Registerer) {
	for _, o := range gateway.ReplyOutcomes() {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "syncgate_forwarded_replies_total",
			Help:        "Replies forwarded to this node by other nodes, by outcome.",
			ConstLabels: prometheus.Labels{"outcome": o.String()},
		}, func() float64 { return float64(g.ForwardCounts()[o]) }))
	}
	for _, op := range gateway.ClusterOps() {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "syncgate_cluster_errors_total",
			Help:        "Failed Redis calls of cluster mode, by operation (the node degrades, see the README).",
			ConstLabels: prometheus.Labels{"op": op},
		}, func() float64 { return float64(g.ClusterErrors()[op]) }))
	}
}
