package instrument

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
)

// Ports is the part of *gateway.Gateway that the HTTP layer calls.
type Ports = gateway.Service

// Gateway wraps next and observes:
//
//   - syncgate_broker_round_trip_seconds{route}: publish to reply, for
//     requests answered with their reply
//   - syncgate_accepted_total{route}: 202 answers
//   - syncgate_idempotent_attached_total{route}: requests answered by an
//     earlier request with the same Idempotency-Key (nothing published)
//   - syncgate_polls_total{result}: GET /v1/requests/{id} by result
//     (pending, done, cancelled, not_found, error)
//   - syncgate_cancels_total{result}: DELETE /v1/requests/{id} by result
//     (cancelled, completed, not_found, error)
func Gateway(next Ports, reg prometheus.Registerer) *Instrumented {
	g := &Instrumented{
		next: next,
		roundTrip: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "syncgate_broker_round_trip_seconds",
			Help:    "Time from publishing a request to receiving its reply, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncgate_accepted_total",
			Help: "Requests answered 202 Accepted, by route.",
		}, []string{"route"}),
		attached: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncgate_idempotent_attached_total",
			Help: "Requests answered from an earlier request with the same Idempotency-Key, by route.",
		}, []string{"route"}),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncgate_polls_total",
			Help: "Polls of GET /v1/requests/{id}, by result.",
		}, []string{"result"}),
		cancels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncgate_cancels_total",
			Help: "DELETE /v1/requests/{id}, by result.",
		}, []string{"result"}),
	}
	reg.MustRegister(g.roundTrip, g.accepted, g.attached, g.polls, g.cancels)
	return g
}

// Instrumented is a gateway observed by metrics; see Gateway.
type Instrumented struct {
	next                               Ports
	roundTrip                          *prometheus.HistogramVec
	accepted, attached, polls, cancels *prometheus.CounterVec
}

// Do calls the gateway's Do and observes its outcome.
func (g *Instrumented) Do(ctx context.Context, req *gateway.Request) (gateway.Outcome, error) {
	out, err := g.next.Do(ctx, req)
	g.observe(req.Route.Name, &out, err)
	return out, err
}

// observe counts the outcome of a request of route. Out of line: Do's
// frame is on the stack of every waiting request, observe's only after
// the wait (issue 17).
//
//go:noinline
func (g *Instrumented) observe(route string, out *gateway.Outcome, err error) {
	if out.Attached {
		g.attached.WithLabelValues(route).Inc()
	}
	if err == nil && out.Accepted {
		g.accepted.WithLabelValues(route).Inc()
	}
	if !out.Replied.IsZero() && !out.Sent.IsZero() {
		g.roundTrip.WithLabelValues(route).Observe(out.Replied.Sub(out.Sent).Seconds())
	}
}

// Result calls the gateway's Result and counts the poll.
func (g *Instrumented) Result(ctx context.Context, id, principal string) (correlation.Result, error) {
	res, err := g.next.Result(ctx, id, principal)
	g.polls.WithLabelValues(pollResult(res, err)).Inc()
	return res, err
}

// Await calls the gateway's Await and counts the poll.
func (g *Instrumented) Await(ctx context.Context, id, principal string, d time.Duration) (correlation.Result, error) {
	res, err := g.next.Await(ctx, id, principal, d)
	g.polls.WithLabelValues(pollResult(res, err)).Inc()
	return res, err
}

// Events calls the gateway's Events; an event stream counts its own
// (api's syncgate_streams_* metrics).
func (g *Instrumented) Events(ctx context.Context, id, principal string, after int, d time.Duration) (correlation.Result, error) {
	return g.next.Events(ctx, id, principal, after, d)
}

// Watch calls the gateway's Watch.
func (g *Instrumented) Watch(ctx context.Context, id string) { g.next.Watch(ctx, id) }

// Cancel calls the gateway's Cancel and counts it.
func (g *Instrumented) Cancel(ctx context.Context, id, principal string) error {
	err := g.next.Cancel(ctx, id, principal)
	result := "cancelled"
	switch {
	case err == nil:
	case errors.Is(err, gateway.ErrNotFound):
		result = "not_found"
	case errors.Is(err, gateway.ErrCompleted):
		result = "completed"
	default:
		result = "error"
	}
	g.cancels.WithLabelValues(result).Inc()
	return err
}

func pollResult(res correlation.Result, err error) string {
	switch {
	case errors.Is(err, gateway.ErrNotFound):
		return "not_found"
	case err != nil:
		return "error"
	}
	return res.State.String()
}
