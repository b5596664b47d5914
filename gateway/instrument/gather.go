package instrument

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncgate/syncgate/gateway"
)

// PartCounts is what Gather reads of a gateway.
type PartCounts interface {
	PartCounts() map[gateway.PartKey]uint64
}

// Gather exports syncgate_gather_parts_total{route,part,outcome}: the
// parts of decided scatter-gather requests, counted by the node that
// decided them, by outcome (ok, error, timeout, failed, pending; see
// gateway.Gateway.PartCounts). Routes and parts come from the
// configuration, so the labels are bounded.
func Gather(g PartCounts, reg prometheus.Registerer) {
	reg.MustRegister(&gatherCollector{g: g, desc: prometheus.NewDesc("syncgate_gather_parts_total",
		"Parts of decided scatter-gather requests, by route, part and outcome.", []string{"route", "part", "outcome"}, nil)})
}

type gatherCollector struct {
	g    PartCounts
	desc *prometheus.Desc
}

func (c *gatherCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *gatherCollector) Collect(ch chan<- prometheus.Metric) {
	for k, n := range c.g.PartCounts() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), k.Route, k.Part, k.Outcome)
	}
}
