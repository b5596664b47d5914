package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/push"
)

// Store is what a Deliverer needs of the result store (correlation's
// MemoryStore and redisstate.Store): the records, and the queue of
// deliveries that Complete fills.
type Store interface {
	Get(ctx context.Context, id string) (correlation.Result, error)
	ClaimDeliveries(ctx context.Context, now time.Time, n int, lease time.Duration) ([]string, error)
	RecordAttempt(ctx context.Context, id string, a correlation.Attempt, state correlation.DeliveryState, next time.Time) error
}

// Route is one route's callback settings.
type Route struct {
	// Secrets sign every delivery, each giving one signature: two during
	// a rotation (see Sign).
	Secrets []Secret
	// Guard decides where deliveries may go; its Timeout bounds an
	// attempt.
	Guard Guard
}

// Config configures a Deliverer.
type Config struct {
	Store Store
	// Routes are the callback settings by route name; a delivery of a
	// route that has none fails.
	Routes map[string]Route
	// Wake, when set, receives when a delivery is queued (MemoryStore's
	// DeliveriesQueued), so it starts at once; the queue is also read
	// every Poll (default 500 ms), which is how deliveries queued by
	// other nodes, or due for a retry, are found.
	Wake <-chan struct{}
	Poll time.Duration
	// Concurrency bounds the attempts under way at once (default 16).
	Concurrency int
	// BackoffMin and BackoffMax bound the pause before a retry (defaults
	// 1 s and 1 min): it doubles with every attempt, with jitter, until
	// the callback's retry window (correlation.Callback.Until) closes.
	BackoffMin, BackoffMax time.Duration
	// KeepHeader picks the reply headers the data carries (by lower-case
	// name); nil keeps all.
	KeepHeader func(name string) bool
	Logger     *slog.Logger
	// Registerer, when set, gets the metrics:
	//   - syncgate_webhook_attempts_total{route,result}: attempts by
	//     result: delivered, retry (it failed and will be retried), failed
	//     (it failed and was the last)
	//   - syncgate_webhook_attempt_duration_seconds{route}
	Registerer prometheus.Registerer
}

// EventType is the type of the data a delivery carries.
const EventType = "syncgate.request.completed"

// Data is what a delivery POSTs (application/json): the event type, the
// request's correlation id and its reply.
type Data struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	push.Result
}

// Deliverer delivers the queued callbacks of a store until Run's context
// ends. Several nodes may run one each on a shared store: each delivery
// is claimed by one at a time, with a lease, so that one a node took and
// did not finish (it died) is taken by another when the lease runs out.
// Delivery is at least once: a receiver drops duplicates by webhook-id,
// which is the request's correlation id.
type Deliverer struct {
	cfg      Config
	clients  map[string]*http.Client
	lease    time.Duration
	log      *slog.Logger
	attempts *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// New returns a Deliverer; Run runs it.
func New(cfg Config) *Deliverer {
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = time.Second
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(time.Minute, cfg.BackoffMin)
	}
	if cfg.KeepHeader == nil {
		cfg.KeepHeader = func(string) bool { return true }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d := &Deliverer{cfg: cfg, clients: make(map[string]*http.Client, len(cfg.Routes)),
		log: cfg.Logger.With(slog.String("component", "webhook"))}
	for name, r := range cfg.Routes {
		d.clients[name] = r.Guard.Client()
		// An attempt takes at most the guard's timeout; the lease adds a
		// margin for recording it.
		d.lease = max(d.lease, r.Guard.timeout()+5*time.Second)
	}
	d.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "syncgate_webhook_attempts_total",
		Help: "Webhook delivery attempts, by route and result: delivered, retry, failed.",
	}, []string{"route", "result"})
	d.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "syncgate_webhook_attempt_duration_seconds",
		Help:    "Time of one webhook delivery attempt, by route.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"route"})
	for name := range cfg.Routes {
		for _, r := range []string{"delivered", "retry", "failed"} {
			d.attempts.WithLabelValues(name, r)
		}
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(d.attempts, d.duration)
	}
	return d
}

// Run claims and attempts deliveries until ctx ends, then waits for the
// attempts under way (cancelled with ctx: a cancelled attempt is not
// recorded, and its lease hands it to another node, or to this one once it
// runs again).
func (d *Deliverer) Run(ctx context.Context) error {
	slots := make(chan struct{}, d.cfg.Concurrency)
	freed := make(chan struct{}, d.cfg.Concurrency)
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		for _, c := range d.clients {
			c.CloseIdleConnections() // their goroutines end with Run
		}
	}()
	tick := time.NewTicker(d.cfg.Poll)
	defer tick.Stop()
	failing := false
	for {
		if free := cap(slots) - len(slots); free > 0 {
			ids, err := d.cfg.Store.ClaimDeliveries(ctx, time.Now(), free, d.lease)
			switch {
			case err != nil && ctx.Err() == nil && !failing:
				failing = true
				d.log.WarnContext(ctx, "webhook: reading the delivery queue failed; retrying", slog.Any("error", err))
			case err == nil && failing:
				failing = false
				d.log.InfoContext(ctx, "webhook: reading the delivery queue works again")
			}
			for _, id := range ids {
				slots <- struct{}{}
				wg.Go(func() {
					defer func() {
						<-slots
						select {
						case freed <- struct{}{}:
						default:
						}
					}()
					d.attempt(ctx, id)
				})
			}
			if len(ids) == free {
				continue // more may be due
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.cfg.Wake:
		case <-freed:
		case <-tick.C:
		}
	}
}

// attempt makes one delivery attempt of request id and records it.
func (d *Deliverer) attempt(ctx context.Context, id string) {
	log := d.log.With(slog.String("correlation_id", id))
	res, err := d.cfg.Store.Get(ctx, id)
	switch {
	case errors.Is(err, correlation.ErrNotFound):
		// Expired with its record: take it off the queue.
		_ = d.cfg.Store.RecordAttempt(ctx, id, correlation.Attempt{}, correlation.DeliveryFailed, time.Time{})
		return
	case err != nil:
		if ctx.Err() == nil {
			log.WarnContext(ctx, "webhook: reading the request failed; the delivery is retried when its lease ends", slog.Any("error", err))
		}
		return
	case res.Delivery == nil || res.Delivery.State != correlation.DeliveryPending || res.State != correlation.StateDone:
		return // delivered or ended already (a lease that ran out late)
	}
	cb := res.Delivery
	now := time.Now()
	route, ok := d.cfg.Routes[cb.Route]
	if !ok {
		d.record(ctx, log, id, cb, correlation.Attempt{At: now, Error: "route " + cb.Route + " has no callback settings"}, correlation.DeliveryFailed, time.Time{})
		return
	}
	body, err := json.Marshal(Data{Type: EventType, ID: id, Result: push.NewResult(res.Reply, d.cfg.KeepHeader)})
	if err != nil {
		d.record(ctx, log, id, cb, correlation.Attempt{At: now, Error: err.Error()}, correlation.DeliveryFailed, time.Time{})
		return
	}
	a, permanent := d.post(ctx, d.clients[cb.Route], route, cb.URL, id, now, body)
	if ctx.Err() != nil {
		return // stopping: the lease hands it on
	}
	d.duration.WithLabelValues(cb.Route).Observe(time.Since(now).Seconds())
	switch {
	case a.Status >= 200 && a.Status < 300:
		d.record(ctx, log, id, cb, a, correlation.DeliveryDelivered, time.Time{})
	case permanent:
		d.record(ctx, log, id, cb, a, correlation.DeliveryFailed, time.Time{})
	default:
		next := now.Add(d.backoff(cb.Count))
		if !next.Before(cb.Until) {
			d.record(ctx, log, id, cb, a, correlation.DeliveryFailed, time.Time{})
			return
		}
		d.record(ctx, log, id, cb, a, correlation.DeliveryPending, next)
	}
}

// post sends one attempt; permanent reports a refusal that no retry
// would change (the guard's).
func (d *Deliverer) post(ctx context.Context, client *http.Client, route Route, url, id string, now time.Time, body []byte) (a correlation.Attempt, permanent bool) {
	a.At = now
	if _, err := route.Guard.CheckURL(url); err != nil {
		a.Error = err.Error()
		return a, true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		a.Error = err.Error()
		return a, true
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "syncgate-webhook")
	Sign(req.Header, route.Secrets, id, now, body)
	resp, err := client.Do(req)
	if err != nil {
		a.Error = shorten(err.Error())
		return a, errors.Is(err, ErrRefused)
	}
	// Read a little of the body, so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	a.Status = resp.StatusCode
	return a, false
}

// record records an attempt, logs and counts it.
func (d *Deliverer) record(ctx context.Context, log *slog.Logger, id string, cb *correlation.Delivery, a correlation.Attempt, state correlation.DeliveryState, next time.Time) {
	result := "retry"
	switch state {
	case correlation.DeliveryDelivered:
		result = "delivered"
		log.DebugContext(ctx, "webhook delivered", slog.Int("status", a.Status), slog.Int("attempts", cb.Count+1))
	case correlation.DeliveryFailed:
		result = "failed"
		log.WarnContext(ctx, "webhook delivery failed for good", slog.String("route", cb.Route),
			slog.Int("status", a.Status), slog.String("error", a.Error), slog.Int("attempts", cb.Count+1))
	default:
		log.InfoContext(ctx, "webhook attempt failed; retrying", slog.String("route", cb.Route),
			slog.Int("status", a.Status), slog.String("error", a.Error), slog.Time("next", next))
	}
	d.attempts.WithLabelValues(cb.Route, result).Inc()
	// The attempt is made: record it even as the node stops.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := d.cfg.Store.RecordAttempt(rctx, id, a, state, next); err != nil && !errors.Is(err, correlation.ErrNotFound) {
		log.WarnContext(ctx, "webhook: recording an attempt failed; the delivery is retried when its lease ends", slog.Any("error", err))
	}
}

// backoff is the pause after the attempts-th failed attempt (0-based):
// BackoffMin doubled per attempt, capped at BackoffMax, the upper half
// of it drawn at random so that retries of many deliveries spread out.
func (d *Deliverer) backoff(attempts int) time.Duration {
	b := d.cfg.BackoffMin
	for range min(attempts, 30) {
		b *= 2
		if b >= d.cfg.BackoffMax {
			b = d.cfg.BackoffMax
			break
		}
	}
	return b/2 + rand.N(b/2+1)
}

func shorten(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// timeout is the guard's attempt timeout.
func (g Guard) timeout() time.Duration {
	if g.Timeout <= 0 {
		return 10 * time.Second
	}
	return g.Timeout
}
