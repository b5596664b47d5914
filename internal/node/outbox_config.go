package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/outbox"
)

// OutboxConfig configures the outbox of the routes with outbox: true: a
// request the broker does not take is queued there and answered 202, and
// a relay publishes the queue in order once the broker is back (README,
// "Outbox").
type OutboxConfig struct {
	// Store is bolt (a file of this node) or postgres (one table shared
	// by the nodes, required in cluster mode: another node's relay takes
	// over a dead node's queue). Empty: no outbox.
	Store string `yaml:"store"`
	// bolt: the file (default syncgate-outbox.db), locked by one process.
	Path string `yaml:"path"`
	// postgres: the database and the table (default syncgate_outbox),
	// which the node creates. pgx reads PGPASSWORD and the other PG*
	// variables.
	URL   string `yaml:"url"`
	Table string `yaml:"table"`
	// MaxItems bounds the queue (default 100000): past it, requests are
	// answered 503 outbox-full with Retry-After.
	MaxItems int `yaml:"max_items"`
	// Retry is the relay's pause after the broker refused a publish
	// (default 1s); Poll how often it looks at a queue that seemed empty
	// (default 500ms; a request queued on this node wakes it at once).
	Retry time.Duration `yaml:"retry"`
	Poll  time.Duration `yaml:"poll"`
}

func (c *OutboxConfig) setDefaults() {
	if c.Store == "" {
		return
	}
	if c.Path == "" {
		c.Path = "syncgate-outbox.db"
	}
	if c.Table == "" {
		c.Table = "syncgate_outbox"
	}
	if c.MaxItems == 0 {
		c.MaxItems = 100_000
	}
	if c.Retry == 0 {
		c.Retry = time.Second
	}
	if c.Poll == 0 {
		c.Poll = 500 * time.Millisecond
	}
}

func (c *Config) checkOutbox(bad func(field, format string, args ...any)) {
	o := c.Outbox
	switch o.Store {
	case "":
	case "bolt":
		if c.Cluster.Enabled {
			bad("outbox.store", "bolt is one node's file: in cluster mode use postgres, so that another node publishes a dead node's queue")
		}
	case "postgres":
		if o.URL == "" {
			bad("outbox.url", "required for a postgres outbox (postgres://user@host:5432/db)")
		}
	default:
		bad("outbox.store", "%q is not an outbox store (bolt, postgres)", o.Store)
	}
	if o.MaxItems < 0 || o.Retry < 0 || o.Poll < 0 {
		bad("outbox", "max_items, retry and poll must not be negative")
	}
	for i, r := range c.Routes {
		if !r.Outbox {
			continue
		}
		f := fmt.Sprintf("routes[%d].outbox", i)
		switch {
		case o.Store == "":
			bad(f, "needs the outbox section (outbox.store: bolt or postgres)")
		case r.Mode == "sync":
			bad(f, "a sync route never answers 202, so it cannot queue: use auto or async")
		}
	}
}

// openOutbox opens the configured outbox store, or returns nil without
// one. A postgres outbox connects and creates its table here: a node
// whose outbox is unreachable does not start.
func (c *Config) openOutbox(ctx context.Context) (outbox.Store, error) {
	switch c.Outbox.Store {
	case "bolt":
		b, err := outbox.OpenBolt(c.Outbox.Path, c.Outbox.MaxItems)
		if err != nil {
			return nil, fmt.Errorf("outbox.path %s: %w", c.Outbox.Path, err)
		}
		return b, nil
	case "postgres":
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		p, err := outbox.OpenPG(ctx, c.Outbox.URL, c.Outbox.Table, c.Outbox.MaxItems)
		if err != nil {
			return nil, fmt.Errorf("outbox (postgres): %w", err)
		}
		return p, nil
	}
	return nil, nil
}

// wakingOutbox is the gateway's outbox: each request queued on this node
// wakes the relay, and is counted.
type wakingOutbox struct {
	outbox.Store
	wake             chan struct{}
	queued, refusals prometheus.Counter
}

func (w *wakingOutbox) Put(ctx context.Context, it outbox.Item) error {
	err := w.Store.Put(ctx, it)
	switch {
	case err == nil:
		w.queued.Inc()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	case errors.Is(err, outbox.ErrFull):
		w.refusals.Inc()
	}
	return err
}

// newOutbox wraps s for the gateway and builds its relay, metrics and
// readiness check.
func (n *Node) newOutbox(s outbox.Store, pub outbox.Publisher, reg prometheus.Registerer) *wakingOutbox {
	w := &wakingOutbox{Store: s, wake: make(chan struct{}, 1),
		queued: prometheus.NewCounter(prometheus.CounterOpts{Name: "syncgate_outbox_queued_total",
			Help: "Requests the broker did not take that were queued in the outbox (answered 202)."}),
		refusals: prometheus.NewCounter(prometheus.CounterOpts{Name: "syncgate_outbox_full_total",
			Help: "Requests the broker did not take that the full outbox refused (answered 503 outbox-full)."}),
	}
	published := prometheus.NewCounter(prometheus.CounterOpts{Name: "syncgate_outbox_published_total",
		Help: "Queued requests this node's relay published."})
	expired := prometheus.NewCounter(prometheus.CounterOpts{Name: "syncgate_outbox_expired_total",
		Help: "Queued requests dropped unpublished because their deadline passed while the broker was down."})
	failed := prometheus.NewCounter(prometheus.CounterOpts{Name: "syncgate_outbox_failed_total",
		Help: "Queued requests dropped unpublished because the broker refused them for good (unroutable, too large)."})
	reg.MustRegister(w.queued, w.refusals, published, expired, failed, outboxGauges{s})
	n.relay = &outbox.Relay{Store: s, Publisher: pub, Wake: w.wake, Poll: n.cfg.Outbox.Poll, Retry: n.cfg.Outbox.Retry,
		PublishTimeout: n.cfg.Broker.PublishTimeout, Logger: n.log,
		Published: func(outbox.Item) { published.Inc() },
		Failed: func(it outbox.Item, _ error) { // the relay logs it
			failed.Inc()
			n.gw.Refused(context.Background(), it.ID) // the relay runs once the gateway is built
		},
		Expired: func(it outbox.Item) {
			expired.Inc()
			n.log.Warn("outbox: a queued request expired before the broker took it; it was not published",
				slog.String("correlation_id", it.ID), slog.String("destination", it.Dest), slog.Time("queued", it.Queued))
		},
	}
	// Not a failure (the outbox is where requests go while the broker is
	// down), but what /readyz?verbose shows of it; a store that cannot
	// say degrades the node.
	n.checks = append(n.checks, api.Check{Name: "outbox", Degrades: true,
		Check: func(ctx context.Context) error {
			_, _, err := s.Stats(ctx)
			return err
		},
		Info: func(ctx context.Context) string {
			d, oldest, err := s.Stats(ctx)
			if err != nil {
				return ""
			}
			if d == 0 {
				return "empty"
			}
			return fmt.Sprintf("%d queued, oldest %s ago", d, time.Since(oldest).Round(time.Second))
		}})
	return w
}

var (
	outboxDepthDesc = prometheus.NewDesc("syncgate_outbox_depth",
		"Requests waiting in the outbox (every node's, on a postgres outbox).", nil, nil)
	outboxAgeDesc = prometheus.NewDesc("syncgate_outbox_oldest_age_seconds",
		"How long the oldest request in the outbox has waited (0: none).", nil, nil)
)

// outboxGauges reports the outbox's depth and age from one Stats call a
// scrape (on postgres, one count of the table, not one per gauge). A store
// that cannot say reports 0 for both.
type outboxGauges struct{ s outbox.Store }

func (g outboxGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- outboxDepthDesc
	ch <- outboxAgeDesc
}

func (g outboxGauges) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	depth, oldest, err := g.s.Stats(ctx)
	age := 0.0
	if err != nil {
		depth = 0
	} else if !oldest.IsZero() {
		age = time.Since(oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(outboxDepthDesc, prometheus.GaugeValue, float64(depth))
	ch <- prometheus.MustNewConstMetric(outboxAgeDesc, prometheus.GaugeValue, age)
}
