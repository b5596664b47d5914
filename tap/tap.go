// Package tap copies every exchange of the routes that ask for it (the
// request as it came, the reply or the outcome, timings, principal, node)
// to sinks (a JSON Lines file, ...), off the request path: each sink has a
// bounded queue and a goroutine that writes batches; a sink that is slow
// or down makes its queue full, and then exchanges are dropped and counted
// (or, for a sink configured to block, the request waits for room).
package tap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Exchange is one request and what became of it.
type Exchange struct {
	Time          time.Time `json:"time"` // when the request arrived
	Node          string    `json:"node"`
	Route         string    `json:"route"`
	CorrelationID string    `json:"correlation_id"`
	RequestID     string    `json:"request_id,omitempty"` // the caller's X-Request-Id
	Principal     string    `json:"principal,omitempty"`
	Request       Request   `json:"request"`
	// Status is the HTTP status answered: the reply's, 202, or a problem's.
	Status int `json:"status"`
	// Outcome is reply, accepted, or the problem type's slug.
	Outcome string `json:"outcome"`
	Reply   *Reply `json:"reply,omitempty"`
	// DurationMS is from the request's arrival to its answer;
	// BrokerMS from the publish to the reply (0 without a reply).
	DurationMS float64 `json:"duration_ms"`
	BrokerMS   float64 `json:"broker_ms,omitempty"`
}

// Request is the request as it came, its headers redacted (see
// Config.Redact) and its body capped.
type Request struct {
	Method string `json:"method"`
	// Path is the path as the client sent it, percent-escaped
	// (URL.EscapedPath): what replay sends again, %2F and %3F included.
	Path          string              `json:"path"`
	Query         string              `json:"query,omitempty"`
	Header        map[string][]string `json:"header,omitempty"`
	Body          []byte              `json:"body,omitempty"`
	BodyTruncated bool                `json:"body_truncated,omitempty"`
}

// Reply is the service's reply, its body capped.
type Reply struct {
	Status        int               `json:"status"`
	ContentType   string            `json:"content_type,omitempty"`
	Header        map[string]string `json:"header,omitempty"`
	Body          []byte            `json:"body,omitempty"`
	BodyTruncated bool              `json:"body_truncated,omitempty"`
}

// Sink receives exchanges in batches, in the order they were recorded.
// Write is called from one goroutine at a time; an error counts the batch
// as failed (it is not retried: the queue moves on).
type Sink interface {
	Write(ctx context.Context, batch []Exchange) error
	Close() error
}

// SinkConfig is one sink of a Tap.
type SinkConfig struct {
	Name string
	Sink Sink
	// Queue bounds the exchanges waiting for the sink (default 10 000).
	Queue int
	// Block makes Record wait for room (up to BlockFor, default 1 s)
	// instead of dropping when the queue is full: back-pressure, for a
	// sink that must not lose what it can take.
	Block    bool
	BlockFor time.Duration
}

// Config configures a Tap.
type Config struct {
	Sinks []SinkConfig
	// Batch bounds one Write (default 256 exchanges). A batch is written
	// once it is full or Linger (default 10 ms) after its first exchange:
	// under load a sink then writes a few large batches a second rather
	// than one syscall per exchange.
	Batch  int
	Linger time.Duration
	Logger *slog.Logger
	// Registerer, when set, gets the metrics, by sink:
	// syncgate_tap_written_total, syncgate_tap_dropped_total,
	// syncgate_tap_errors_total (failed writes), syncgate_tap_queued
	// (exchanges waiting) and syncgate_tap_lag_seconds (how long the oldest
	// waiting one has waited).
	Registerer prometheus.Registerer
}

// DefaultRedact are the request headers a tap never copies.
var DefaultRedact = []string{"Authorization", "Cookie", "Proxy-Authorization", "X-Api-Key"}

// Tap records exchanges to its sinks. Create it with New, run it with Run.
type Tap struct {
	cfg   Config
	sinks []*sink
	log   *slog.Logger
}

type sink struct {
	SinkConfig
	q                        chan queued
	written, dropped, failed prometheus.Counter
	lag                      atomic.Int64 // ns the last batch's oldest exchange waited
	warned                   atomic.Int64 // unix ns of the last drop warning
}

type queued struct {
	x  Exchange
	at time.Time
}

// New returns a tap over cfg's sinks.
func New(cfg Config) (*Tap, error) {
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 10 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	t := &Tap{cfg: cfg, log: cfg.Logger.With(slog.String("component", "tap"))}
	written := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "syncgate_tap_written_total", Help: "Exchanges a tap sink wrote."}, []string{"sink"})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "syncgate_tap_dropped_total", Help: "Exchanges dropped because a tap sink's queue was full."}, []string{"sink"})
	failed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "syncgate_tap_errors_total", Help: "Exchanges in batches a tap sink failed to write."}, []string{"sink"})
	collectors := []prometheus.Collector{written, dropped, failed}
	seen := map[string]bool{}
	for _, sc := range cfg.Sinks {
		if sc.Name == "" || sc.Sink == nil {
			return nil, errors.New("tap: a sink needs a name and a Sink")
		}
		if seen[sc.Name] {
			return nil, fmt.Errorf("tap: sink %q given twice", sc.Name)
		}
		seen[sc.Name] = true
		if sc.Queue <= 0 {
			sc.Queue = 10_000
		}
		if sc.BlockFor <= 0 {
			sc.BlockFor = time.Second
		}
		s := &sink{SinkConfig: sc, q: make(chan queued, sc.Queue),
			written: written.WithLabelValues(sc.Name), dropped: dropped.WithLabelValues(sc.Name), failed: failed.WithLabelValues(sc.Name)}
		t.sinks = append(t.sinks, s)
		labels := prometheus.Labels{"sink": sc.Name}
		collectors = append(collectors,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "syncgate_tap_queued", Help: "Exchanges waiting for a tap sink.", ConstLabels: labels},
				func() float64 { return float64(len(s.q)) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "syncgate_tap_lag_seconds", Help: "How long the oldest exchange of a tap sink's last batch had waited.", ConstLabels: labels},
				func() float64 { return time.Duration(s.lag.Load()).Seconds() }))
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(collectors...)
	}
	return t, nil
}

// Record queues x for every sink; see Recorder.Record.
func (t *Tap) Record(x Exchange) { t.record(x, t.sinks) }

// Recorder records to some of a tap's sinks: a route's.
type Recorder struct {
	t     *Tap
	sinks []*sink
}

// Recorder returns a recorder to the sinks named (each must exist).
func (t *Tap) Recorder(names []string) (*Recorder, error) {
	r := &Recorder{t: t}
	for _, n := range names {
		i := slices.IndexFunc(t.sinks, func(s *sink) bool { return s.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("tap: no sink %q", n)
		}
		r.sinks = append(r.sinks, t.sinks[i])
	}
	return r, nil
}

// Record queues x for the recorder's sinks, without waiting (unless a
// sink blocks): a sink whose queue is full drops it and counts it. x must
// not change afterwards; its bodies are shared, not copied.
func (r *Recorder) Record(x Exchange) { r.t.record(x, r.sinks) }

func (t *Tap) record(x Exchange, sinks []*sink) {
	now := time.Now()
	for _, s := range sinks {
		select {
		case s.q <- queued{x, now}:
			continue
		default:
		}
		if s.Block {
			timer := time.NewTimer(s.BlockFor)
			select {
			case s.q <- queued{x, now}:
				timer.Stop()
				continue
			case <-timer.C:
			}
		}
		s.dropped.Inc()
		// One warning a minute per sink: a flood of drops is a metric.
		if last := s.warned.Load(); now.UnixNano()-last > int64(time.Minute) && s.warned.CompareAndSwap(last, now.UnixNano()) {
			t.log.Warn("tap: a sink's queue is full; dropping exchanges (syncgate_tap_dropped_total counts them)",
				slog.String("sink", s.Name), slog.Int("queue", cap(s.q)))
		}
	}
}

// Run writes each sink's queue until ctx ends, then what is queued still
// (within flush, to bound a shutdown), and closes the sinks. A sink stuck
// in a write its context cannot end (a file on a hung NFS mount, a FIFO
// nobody reads) is left behind a second after the flush time: Run returns
// an error naming it instead of holding the shutdown; the sink is closed
// if its write ever returns.
func (t *Tap) Run(ctx context.Context, flush time.Duration) error {
	var errs []error
	done := make([]chan struct{}, len(t.sinks))
	for i, s := range t.sinks {
		done[i] = make(chan struct{})
		go func() {
			defer close(done[i])
			t.drain(ctx, s, flush)
		}()
	}
	<-ctx.Done()
	giveUp := time.NewTimer(flush + time.Second)
	defer giveUp.Stop()
	late := false // giveUp fired: what has not finished by now is stuck
	for i, s := range t.sinks {
		if !late {
			select {
			case <-done[i]:
			case <-giveUp.C:
				late = true
			}
		}
		select {
		case <-done[i]:
			if err := s.Sink.Close(); err != nil {
				errs = append(errs, fmt.Errorf("tap: close sink %s: %w", s.Name, err))
			}
		default:
			errs = append(errs, fmt.Errorf("tap: sink %s is stuck in a write; left behind with %d exchanges queued", s.Name, len(s.q)))
			// Closed if its write ever returns (its goroutines end then).
			go func() {
				<-done[i]
				_ = s.Sink.Close()
			}()
		}
	}
	return errors.Join(errs...)
}

// drain is sink s's writer. Its writes outlive ctx by flush at most: a
// write under way when ctx ends, and the writes of what is still queued,
// get until then.
func (t *Tap) drain(ctx context.Context, s *sink, flush time.Duration) {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var deadline atomic.Pointer[time.Timer]
	defer context.AfterFunc(ctx, func() { deadline.Store(time.AfterFunc(flush, cancel)) })()
	defer func() {
		if d := deadline.Load(); d != nil {
			d.Stop()
		}
	}()
	batch := make([]Exchange, 0, t.cfg.Batch)
	write := func(oldest time.Time) {
		s.lag.Store(int64(time.Since(oldest)))
		if err := s.Sink.Write(wctx, batch); err != nil {
			s.failed.Add(float64(len(batch)))
			t.log.Warn("tap: writing to a sink failed", slog.String("sink", s.Name), slog.Int("exchanges", len(batch)), slog.Any("error", err))
		} else {
			s.written.Add(float64(len(batch)))
		}
		clear(batch) // let the bodies go
		batch = batch[:0]
	}
	// fill takes what is queued now, up to a batch, after first.
	fill := func(first queued) {
		batch = append(batch, first.x)
		for len(batch) < cap(batch) {
			select {
			case q := <-s.q:
				batch = append(batch, q.x)
			default:
				return
			}
		}
	}
	linger := time.NewTimer(t.cfg.Linger)
	linger.Stop()
	defer linger.Stop()
	// collect fills a batch after first for up to the linger time.
	collect := func(first queued) {
		batch = append(batch, first.x)
		linger.Reset(t.cfg.Linger)
		defer linger.Stop()
		for len(batch) < cap(batch) {
			select {
			case q := <-s.q:
				batch = append(batch, q.x)
			case <-linger.C:
				return
			case <-ctx.Done():
				return
			}
		}
	}
	for {
		select {
		case q := <-s.q:
			collect(q)
			write(q.at)
			continue
		case <-ctx.Done():
		}
		// Stopping: write what is queued, until the flush time is up.
		for wctx.Err() == nil {
			select {
			case q := <-s.q:
				fill(q)
				write(q.at)
			default:
				return
			}
		}
		return
	}
}

// Capture builds the Request of an exchange from r and its body: headers
// but those in redact (canonical names), the body up to maxBody bytes (0:
// none; negative: all).
func Capture(r *http.Request, body []byte, redact map[string]bool, maxBody int) Request {
	req := Request{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Header: r.Header}
	// The request's own map, unless a header must go: nothing changes a
	// request's headers once its handler has returned.
	for k := range redact {
		if _, ok := r.Header[k]; ok {
			req.Header = make(map[string][]string, len(r.Header))
			for k, v := range r.Header {
				if !redact[k] {
					req.Header[k] = v
				}
			}
			break
		}
	}
	req.Body, req.BodyTruncated = CapBody(body, maxBody)
	return req
}

// RedactSet returns names as a set of canonical header names.
func RedactSet(names []string) map[string]bool {
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[http.CanonicalHeaderKey(strings.TrimSpace(n))] = true
	}
	return set
}

// CapBody returns b cut to max bytes (negative: all, 0: none) and
// whether it was cut.
func CapBody(b []byte, max int) ([]byte, bool) {
	switch {
	case max < 0 || len(b) <= max:
		return b, false
	case max == 0:
		return nil, len(b) > 0
	}
	return b[:max:max], true
}
