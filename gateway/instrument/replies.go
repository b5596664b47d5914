package instrument

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/gateway"
)

// DispatchFunc is gateway.Gateway.DispatchReply.
type DispatchFunc func(ctx context.Context, m brokers.Message) (gateway.ReplyOutcome, error)

// ReplyHandler adapts dispatch to the node's reply subscription and counts
// every reply by what became of it: syncgate_replies_total{outcome}
// (delivered, stored, duplicate, orphan, invalid, cancelled, forwarded,
// lost; every outcome is exported from the start, at 0; an invalid reply
// whose request got a 502 invalid-reply in its place counts only as
// invalid), and syncgate_reply_errors_total for
// replies the store failed on (the broker redelivers them).
func ReplyHandler(dispatch DispatchFunc, reg prometheus.Registerer) brokers.Handler {
	replies := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "syncgate_replies_total",
		Help: "Reply messages consumed, by outcome.",
	}, []string{"outcome"})
	errs := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "syncgate_reply_errors_total",
		Help: "Reply messages that could not be stored (left for redelivery).",
	})
	reg.MustRegister(replies, errs)
	counters := make(map[gateway.ReplyOutcome]prometheus.Counter)
	for _, o := range gateway.ReplyOutcomes() {
		counters[o] = replies.WithLabelValues(o.String())
	}
	return func(ctx context.Context, m brokers.Message) error {
		out, err := dispatch(ctx, m)
		if err != nil {
			errs.Inc()
			return err
		}
		counters[out].Inc()
		return nil
	}
}
