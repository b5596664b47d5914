package instrument

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/gateway"
)

// Publisher times every publish of next:
// syncgate_publish_duration_seconds{destination,result} (result ok or error).
// Destinations come from the configuration, so the label is bounded.
func Publisher(next gateway.Publisher, reg prometheus.Registerer) gateway.Publisher {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "syncgate_publish_duration_seconds",
		Help:    "Time for the broker to acknowledge one request message, by destination and result.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
	}, []string{"destination", "result"})
	reg.MustRegister(h)
	return &publisher{next: next, dur: h}
}

type publisher struct {
	next gateway.Publisher
	dur  *prometheus.HistogramVec
}

func (p *publisher) Publish(ctx context.Context, dest string, m brokers.Message) error {
	start := time.Now()
	err := p.next.Publish(ctx, dest, m)
	result := "ok"
	if err != nil {
		result = "error"
	}
	p.dur.WithLabelValues(dest, result).Observe(time.Since(start).Seconds())
	return err
}
