package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/api/middleware"
	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/brokers/kafka"
	"github.com/syncgate/syncgate/brokers/memory"
	natsb "github.com/syncgate/syncgate/brokers/nats"
	"github.com/syncgate/syncgate/brokers/rabbitmq"
	"github.com/syncgate/syncgate/brokers/responder"
	"github.com/syncgate/syncgate/brokers/responder/demo"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/correlation/redisstate"
	"github.com/syncgate/syncgate/gateway"
	"github.com/syncgate/syncgate/gateway/instrument"
	"github.com/syncgate/syncgate/internal/telemetry"
	"github.com/syncgate/syncgate/internal/tlsreload"
	"github.com/syncgate/syncgate/outbox"
	"github.com/syncgate/syncgate/push/webhook"
	"github.com/syncgate/syncgate/ratelimit"
	"github.com/syncgate/syncgate/ratelimit/redislimit"
	"github.com/syncgate/syncgate/tap"
)

// Broker is what a node needs of a backend.
type Broker interface {
	brokers.Publisher
	brokers.Subscriber
}

// Node is one running gateway node.
type Node struct {
	cfg Config
	log *slog.Logger
	// tracing is the node's tracer and propagator; ownTracing: New made
	// it (from the environment), so Run shuts it down.
	tracing    *telemetry.Tracing
	ownTracing bool
	broker     *lazyBroker
	gw         *gateway.Gateway
	handler    http.Handler
	metrics    *prometheus.Registry
	ln         net.Listener
	// tls serves the API listener's certificate when cfg.TLS is enabled.
	tls *tlsreload.Reloader
	// admin and adminLn serve the admin surface when cfg.AdminAddr is set.
	admin   http.Handler
	adminLn net.Listener

	// Cluster mode only: the Redis client, the router whose Listen takes
	// forwarded replies, and the lease on this node's id.
	rdb    goredis.UniversalClient
	router *redisstate.Router
	lease  *redisstate.Lease // set by connect; read under mu
	// mu guards lease and waiting (the address connect waits for).
	mu      sync.Mutex
	waiting string
	// connected is closed once connect took the node id (cluster mode)
	// and dialled the broker.
	connected chan struct{}
	adopter   *gateway.Adopter // set by Run
	// results is the in-memory result store (not cluster mode), whose
	// expired records Run reclaims in the background.
	results *correlation.MemoryStore
	// jwt, when auth.jwt is set, fetches the JWKS while Run runs.
	jwt *middleware.JWT

	ready    chan struct{} // closed once the reply consumer (and demo) are positioned
	draining atomic.Bool
	drainCh  chan struct{} // closed when shutdown starts
	// abortUploads ends at the end of the drain: request bodies still being
	// read are cut and answered 503 (see api.Options.AbortUploads).
	abortUploads       context.Context
	stopReadingUploads context.CancelFunc
	// deliverer delivers the callbacks of routes with a callback section.
	deliverer *webhook.Deliverer
	// tap copies the exchanges of routes with a tap section (nil: none).
	tap *tap.Tap
	// outbox and relay queue and publish what the broker did not take,
	// for routes with outbox: true (nil: no outbox section).
	outbox outbox.Store
	relay  *outbox.Relay
	// endStreams ends when the listener closes: event streams end with a
	// shutdown event, to reconnect elsewhere (api.Options.EndStreams).
	endStreams  context.Context
	stopStreams context.CancelFunc
	streams     sync.WaitGroup // the goroutines of event streams (api.Options.StreamGroup)
	// checks are the readiness checks of /readyz, in order. A backend that
	// needs one (Redis reachable) appends it in New, before api.New copies
	// the list.
	checks []api.Check
}

// New builds a node from a defaulted, validated Config and listens on its
// address, so that Addr is known before Run.
//
// Every line it logs carries node, and every line logged with a request's
// context carries correlation_id, route and trace_id (see
// middleware.ContextHandler).
func New(cfg Config, log *slog.Logger, opts ...Option) (*Node, error) {
	log = slog.New(middleware.ContextHandler(log.Handler())).With(slog.String("node", cfg.Node))
	n := &Node{cfg: cfg, log: log, metrics: prometheus.NewRegistry(),
		ready: make(chan struct{}), drainCh: make(chan struct{}), connected: make(chan struct{}),
		broker: newLazyBroker()}
	for _, o := range opts {
		o(n)
	}
	if n.tracing == nil {
		t, err := telemetry.FromEnv(context.Background())
		if err != nil {
			return nil, err
		}
		n.tracing, n.ownTracing = t, true
		if t.Recording() {
			telemetry.LogErrorsTo(log)
		}
	}
	n.abortUploads, n.stopReadingUploads = context.WithCancel(context.Background())
	n.endStreams, n.stopStreams = context.WithCancel(context.Background())
	n.checks = []api.Check{
		{Name: "shutdown", Check: n.notDraining},
		{Name: "reply-consumer", Check: n.positioned},
	}
	var (
		store   gateway.Store
		idem    gateway.IdempotencyStore
		cluster *gateway.Cluster
	)
	if cfg.Cluster.Enabled {
		// The node id is taken by connect (see Run), before the broker
		// is dialled: a second node with the same id must not touch the
		// broker at all.
		rcfg := n.redisConfig()
		rdb, err := redisstate.NewClient(rcfg)
		if err != nil {
			return nil, fmt.Errorf("cluster.%w", err)
		}
		n.rdb = rdb
		n.router = redisstate.NewRouter(n.rdb, rcfg)
		n.addClusterChecks(rcfg)
		store, idem = redisstate.NewStore(n.rdb, rcfg), redisstate.NewIdempotency(n.rdb, rcfg)
		cluster = &gateway.Cluster{Node: cfg.Node, Router: n.router, ClaimMargin: cfg.Cluster.ClaimMargin}
	} else {
		n.results = correlation.NewMemoryStore(correlation.MemoryStoreConfig{
			MaxEntries: cfg.Results.MaxEntries, MaxBytes: int64(cfg.Results.MaxBytes), ResultTTL: cfg.Results.TTL,
		})
		store = n.results
		n.metrics.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "syncgate_results_stored",
				Help: "Records in the in-memory result store (pending and completed)."}, func() float64 { return float64(n.results.Len()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "syncgate_results_bytes",
				Help: "Size of the in-memory result store, as counted against results.max_bytes."}, func() float64 { return float64(n.results.Bytes()) }),
		)
		idem = correlation.NewMemoryIdempotency(correlation.MemoryIdempotencyConfig{
			TTL: cfg.Idempotency.TTL, MaxEntries: cfg.Idempotency.MaxEntries,
		})
	}
	b := n.broker
	reg := n.metrics
	// The gateway's and the outbox relay's publishes are measured and
	// traced alike.
	pub := instrument.TracedPublisher(instrument.Publisher(b, reg), n.tracing.Tracer, n.tracing.Propagator, cfg.Broker.Kind, n.tracing.Recording())
	var box gateway.Outbox
	if s, err := cfg.openOutbox(context.Background()); err != nil {
		n.closeEarly()
		return nil, err
	} else if s != nil {
		n.outbox = s
		box = n.newOutbox(s, pub, reg)
	}
	gw := gateway.New(gateway.Config{
		ReplyTo: cfg.ReplyTo, PublishTimeout: cfg.Broker.PublishTimeout,
		RetryAfter: cfg.Results.RetryAfter, Logger: log,
		Idempotency: idem, IdempotencyTTL: cfg.Idempotency.TTL, Cluster: cluster, Outbox: box,
		Gathers: cfg.gathers(),
	}, pub, store)
	n.gw = gw
	if cfg.gathers() {
		instrument.Gather(gw, reg)
	}
	if cluster != nil {
		instrument.Cluster(gw, reg)
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "syncgate_adopted_nodes",
			Help: "Dead nodes whose reply addresses this node consumes (cluster mode).",
		}, func() float64 { return float64(len(n.Adopting())) }))
	}
	// Not connected yet, or a backend that tracks its connection (RabbitMQ,
	// Kafka) reports it down: /readyz turns false, naming the address.
	n.checks = append(n.checks, api.Check{Name: "broker", Check: func(context.Context) error {
		if !b.Ready() {
			return fmt.Errorf("%s not connected", n.waitingFor())
		}
		return nil
	}})

	routes := make([]api.Route, 0, len(cfg.Routes))
	hooks := make(map[string]webhook.Route)
	var err error
	if n.tap, err = cfg.newTap(b, reg, log); err != nil {
		n.closeEarly()
		return nil, err
	}
	redact := tap.RedactSet(cfg.Taps.Redact)
	for _, rc := range cfg.Routes {
		mode, _ := gateway.ParseMode(rc.Mode)       // validated
		gather, _ := gateway.ParseGather(rc.Gather) // validated
		var key *api.KeyTemplate
		if rc.Key != "" {
			key, _ = api.ParseKeyTemplate(rc.Key, rc.Path) // validated
		}
		route := api.Route{
			Key:    key,
			Method: rc.Method, Path: rc.Path, MaxBody: int64(rc.MaxBody), MaxInFlight: rc.MaxInFlight,
			ForwardHeaders: cfg.forwardHeaders(rc),
			Route: &gateway.Route{
				Name: rc.Name, Destination: rc.publishTo(), Mode: mode, Profile: rc.profile(cfg.Broker), Wait: rc.Wait, Timeout: rc.Timeout,
				MaxWait: rc.MaxWait, RequireKey: rc.RequireIdempotencyKey, Outbox: rc.Outbox,
				Parts: rc.parts(), Gather: gather, Quorum: rc.Quorum,
			},
			Auth:      middleware.AuthMode(rc.Auth),
			RateLimit: rc.RateLimit.limit(), NoRateLimit: rc.RateLimit.Off,
		}
		if rc.Tap != nil && n.tap != nil {
			route.Tap, _ = n.tap.Recorder(rc.Tap.Sinks) // validated
			route.TapMaxBody, route.TapRedact, route.Node = cfg.tapBody(rc), redact, cfg.Node
		}
		if cb := rc.Callback; cb != nil {
			guard := &webhook.Guard{Allow: cb.Allow, AllowPrivate: cb.AllowPrivate, Timeout: cb.Timeout}
			route.Callback, route.Route.CallbackWindow = guard, cb.RetryFor
			hook := webhook.Route{Guard: *guard}
			for _, sec := range cb.Secrets {
				secret, _ := webhook.ParseSecret(sec) // validated
				hook.Secrets = append(hook.Secrets, secret)
			}
			hooks[rc.Name] = hook
		}
		routes = append(routes, route)
	}
	if len(hooks) > 0 {
		hookStore, _ := store.(webhook.Store) // both stores are
		var wake <-chan struct{}
		if n.results != nil {
			wake = n.results.DeliveriesQueued()
		}
		n.deliverer = webhook.New(webhook.Config{Store: hookStore, Routes: hooks, Wake: wake,
			KeepHeader: api.KeepReplyHeader, Logger: log, Registerer: reg})
	}
	n.metrics.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "syncgate_waiting_requests",
			Help: "Requests on this node waiting for their reply (correlation registry size).",
		}, func() float64 { return float64(gw.Waiting()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "syncgate_http_max_in_flight",
			Help: "http.max_in_flight: requests served at once above which the node answers 503 overloaded (0: no limit).",
		}, func() float64 { return float64(cfg.HTTP.MaxInFlight) }),
	)
	authn, jwt, err := cfg.authenticator(log)
	if err != nil {
		n.closeEarly()
		return nil, fmt.Errorf("auth: %w", err)
	}
	if jwt != nil {
		// Keys that cannot be fetched leave API keys working: degraded.
		n.jwt = jwt
		n.checks = append(n.checks, api.Check{Name: "jwks", Degrades: true, Check: jwt.Check})
	}
	var apiMetrics http.Handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if cfg.AdminAddr != "" {
		n.admin = api.NewAdmin(api.AdminOptions{Checks: n.checks, Metrics: apiMetrics, Logger: log})
		apiMetrics = nil
	}
	n.handler, err = api.New(api.Options{
		Auth: authn, RateLimit: cfg.Auth.RateLimit.limit(), RateLimiter: n.rateLimiter(),
		Gateway: instrument.Gateway(gw, reg), Routes: routes, Logger: log, Checks: n.checks, Tracing: n.tracing,
		Metrics: apiMetrics, Registerer: reg, ReadyzNamesOnly: cfg.AdminAddr != "",
		RetryAfter: cfg.Results.RetryAfter, MaxInFlight: cfg.HTTP.MaxInFlight,
		MaxHeaderBytes: int(cfg.HTTP.MaxHeaderBytes), BodyTimeout: cfg.HTTP.BodyTimeout,
		MaxPollWait: cfg.HTTP.MaxPollWait, AbortUploads: n.abortUploads,
		StreamHeartbeat: cfg.HTTP.StreamHeartbeat, StreamWriteTimeout: cfg.HTTP.StreamWriteTimeout, EndStreams: n.endStreams,
		StreamGroup: &n.streams,
	})
	if err != nil {
		n.closeEarly()
		return nil, err
	}
	if cfg.TLS.Enabled() {
		if n.tls, err = tlsreload.New(cfg.TLS.reloaderConfig(log)); err != nil {
			n.closeEarly()
			return nil, fmt.Errorf("tls: %w", err)
		}
	}
	if n.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		n.closeEarly()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if cfg.AdminAddr != "" {
		if n.adminLn, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
			_ = n.ln.Close()
			n.closeEarly()
			return nil, fmt.Errorf("listen on admin_addr %s: %w", cfg.AdminAddr, err)
		}
	}
	return n, nil
}

// rateLimiter is the limiter of the rate limits: the node's own, or in
// cluster mode one in Redis shared by every node, which falls back to the
// node's own while Redis fails (counted in
// syncgate_rate_limit_fallbacks_total). nil without rate limits.
func (n *Node) rateLimiter() ratelimit.Limiter {
	if !n.cfg.RateLimited() {
		return nil
	}
	local := ratelimit.NewMemory(ratelimit.MemoryConfig{})
	if n.rdb == nil {
		return local
	}
	fallbacks := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "syncgate_rate_limit_fallbacks_total",
		Help: "Rate-limit decisions this node made alone because Redis failed (cluster mode).",
	})
	n.metrics.MustRegister(fallbacks)
	return redislimit.New(n.rdb, redislimit.Config{
		Prefix: n.cfg.Cluster.Redis.Prefix, Fallback: local, Logger: n.log, OnFallback: fallbacks.Inc,
	})
}

func (n *Node) redisConfig() redisstate.Config {
	rcfg := n.cfg.Cluster.Redis
	rcfg.Logger = n.log
	return rcfg
}

// joinCluster takes the node's id in Redis, waiting up to one lease TTL
// for the lease of a previous process with this id to lapse, and
// registers its reply address. Called by connect until it succeeds.
func (n *Node) joinCluster(ctx context.Context) error {
	cc := n.cfg.Cluster
	rcfg := n.redisConfig()
	ctx, cancel := context.WithTimeout(ctx, cc.LeaseTTL+rcfg.DialTimeout+5*time.Second)
	defer cancel()
	lease, err := n.router.Join(ctx, n.cfg.Node, cc.LeaseTTL, cc.LeaseTTL)
	if err != nil {
		return fmt.Errorf("cluster: take node id %q in Redis (%s): %w", n.cfg.Node, rcfg.Servers(), rcfg.Explain(err))
	}
	if err := n.router.Register(ctx, n.cfg.Node, n.cfg.ReplyTo); err != nil {
		_ = lease.Close()
		return fmt.Errorf("cluster: register node %q: %w", n.cfg.Node, err)
	}
	lease.Advertise(n.cfg.ReplyTo)
	n.mu.Lock()
	n.lease = lease
	n.mu.Unlock()
	n.log.Info("joined the cluster", slog.String("redis", rcfg.Servers()), slog.String("lease", lease.Token()))
	return nil
}

// addClusterChecks adds the readiness checks of cluster mode: Redis
// reachable (degrades) and the id taken and still held (fails).
func (n *Node) addClusterChecks(rcfg redisstate.Config) {
	timeout, rdb := rcfg.ReadTimeout, n.rdb
	n.checks = append(n.checks,
		api.Check{Name: "redis", Degrades: true, Check: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			return rdb.Ping(ctx).Err()
		}},
		api.Check{Name: "node-id", Check: func(context.Context) error {
			lease := n.getLease()
			if lease == nil {
				return fmt.Errorf("node id %q not taken yet (redis %s)", n.cfg.Node, rcfg.Servers())
			}
			return lease.Err()
		}},
	)
}

// leaveCluster gives the node id back and closes the Redis client.
// closeEarly undoes what New set up before it failed.
func (n *Node) closeEarly() {
	_ = n.broker.Close()
	if n.outbox != nil {
		_ = n.outbox.Close()
	}
	n.leaveCluster()
}

func (n *Node) leaveCluster() {
	if n.rdb == nil {
		return
	}
	if lease := n.getLease(); lease != nil {
		if err := lease.Close(); err != nil {
			n.log.Warn("cluster: releasing the node id failed; it lapses by itself", slog.Any("error", err))
		}
	}
	_ = n.rdb.Close()
}

// NewBroker returns the backend a defaulted BrokerConfig selects.
func NewBroker(cfg BrokerConfig, log *slog.Logger) (Broker, error) {
	switch cfg.Kind {
	case "memory":
		return memory.New(memory.Config{QueueSize: cfg.Memory.QueueSize}), nil
	case "kafka":
		cfg.Kafka.Logger = log
		return kafka.New(cfg.Kafka)
	case "rabbitmq":
		cfg.RabbitMQ.Logger = log
		return rabbitmq.Dial(cfg.RabbitMQ)
	case "nats":
		cfg.NATS.Logger = log
		return natsb.Dial(cfg.NATS)
	}
	return nil, fmt.Errorf("broker.kind: unknown broker %q", cfg.Kind)
}

// Adopting returns the dead nodes whose reply addresses this node consumes
// (cluster mode; see gateway.Adopter).
func (n *Node) Adopting() []string {
	if n.adopter == nil {
		return nil
	}
	return n.adopter.Adopting()
}

// Addr returns the address the node listens on.
func (n *Node) Addr() string { return n.ln.Addr().String() }

// AdminAddr returns the admin listener's address, "" without admin_addr.
func (n *Node) AdminAddr() string {
	if n.adminLn == nil {
		return ""
	}
	return n.adminLn.Addr().String()
}

// Ready is closed once the node can take traffic.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Gateway returns the node's gateway (for tests and metrics).
func (n *Node) Gateway() *gateway.Gateway { return n.gw }

// Handler returns the node's HTTP handler.
func (n *Node) Handler() http.Handler { return n.handler }

// Draining is closed as soon as shutdown starts (readiness is false from then).
func (n *Node) Draining() <-chan struct{} { return n.drainCh }

// Metrics returns the node's Prometheus registry.
func (n *Node) Metrics() *prometheus.Registry { return n.metrics }

func (n *Node) notDraining(context.Context) error {
	if n.draining.Load() {
		return errors.New("shutting down")
	}
	return nil
}

func (n *Node) positioned(context.Context) error {
	select {
	case <-n.ready:
		return nil
	default:
		return fmt.Errorf("%s not connected or reply consumer not positioned yet", n.waitingFor())
	}
}

var errConsumerStopped = errors.New("a consumer stopped")

// shutdown stops the HTTP side in three steps. (1) Readiness turns 503 at
// once while the node goes on serving for the readiness delay, so that
// probes and load balancers stop sending before connections are refused
// (skipped when the server failed: healthy is true only after a signal).
// (2) The listener closes and in-flight requests get the drain timeout,
// less a final grace; the gateway drains (no 202 whose Location dies with
// the process). (3) What still runs is answered: waiters get 202 (results
// outlive the node) or 503, uploads still being read are cut with a 503,
// and after the grace the connections left are closed. shutdown returns
// within readiness delay + drain timeout.
func (n *Node) shutdown(srv *http.Server, healthy bool) {
	n.draining.Store(true)
	close(n.drainCh)
	n.gw.Drain()
	delay, drain := n.cfg.Shutdown.ReadinessDelay, n.cfg.Shutdown.DrainTimeout
	n.log.Info("shutting down: /readyz answers 503; the listener closes after the readiness delay",
		slog.Duration("readiness_delay", delay), slog.Duration("drain_timeout", drain),
		slog.Int("waiting", n.gw.Waiting()))
	if healthy && delay > 0 {
		time.Sleep(delay) // serving on: the point of the delay
	}
	// The final grace answers what the drain could not finish: a tenth
	// of the drain, between 100 ms and 1 s.
	grace := min(max(drain/10, 100*time.Millisecond), time.Second, drain)
	drainCtx, cancel := context.WithTimeout(context.Background(), drain-grace)
	// An event stream would hold the drain to its end: it ends now, with
	// a shutdown event, and its client reconnects to another node.
	n.stopStreams()
	err := srv.Shutdown(drainCtx)
	cancel()
	n.streams.Wait() // each writes its shutdown event and closes
	// Whatever still waits now gets its answer: 202 or 503.
	n.gw.Close()
	if err == nil {
		return
	}
	n.log.Warn("drain timeout reached; answering the requests still in flight", slog.Int("waiting", n.gw.Waiting()))
	n.stopReadingUploads()
	finalCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(finalCtx); err != nil {
		n.log.Warn("closing the connections still open after the drain timeout")
		_ = srv.Close()
	}
}

// Option adjusts a Node made by New.
type Option func(*Node)

// WithTracing makes the node trace with t instead of what the OTEL_*
// environment variables configure (tests pass an in-memory exporter's).
// The caller shuts t down.
func WithTracing(t *telemetry.Tracing) Option { return func(n *Node) { n.tracing = t } }

// Tracing returns the node's tracing.
func (n *Node) Tracing() *telemetry.Tracing { return n.tracing }

// Run serves until ctx ends, then shuts down gracefully: readiness turns
// false, the listener closes, in-flight requests get until the drain timeout,
// then every request still waiting is answered (202 on pollable routes, 503
// on sync routes), and only then do consumers stop and the broker close. Run
// returns nil after a clean shutdown.
func (n *Node) Run(ctx context.Context) error {
	if n.ownTracing {
		defer func() {
			// Flush the spans of the last requests.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := n.tracing.Shutdown(sctx); err != nil {
				n.log.Warn("tracing: flushing spans at exit failed", slog.Any("error", err))
			}
		}()
	}
	srv := &http.Server{
		Handler:           n.handler,
		ReadHeaderTimeout: n.cfg.HTTP.ReadHeaderTimeout,
		IdleTimeout:       n.cfg.HTTP.IdleTimeout,
		// The API answers a 431 problem above the configured limit; this is
		// the hard backstop (net/http's plain 431) for what it cannot parse.
		MaxHeaderBytes: 2 * int(n.cfg.HTTP.MaxHeaderBytes),
		ErrorLog:       serverErrorLog(n.log),
	}
	// Consumers outlive the HTTP server: replies must keep flowing while
	// in-flight requests drain.
	consumeCtx, stopConsumers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConsumers()
	consumers, consumeCtx := errgroup.WithContext(consumeCtx)

	// The node id (cluster mode) and the broker connection are taken in
	// the background, retried until they succeed (see connect.go); the
	// consumers start once they are. The listener of forwarded replies is
	// stopped after the consumers, with the lease released last.
	listener := make(chan io.Closer, 1)
	defer func() {
		select {
		case l := <-listener:
			_ = l.Close()
		default:
		}
		n.leaveCluster()
	}()
	start := make(chan struct{})
	consumers.Go(func() error {
		if err := n.connect(consumeCtx); err != nil {
			return err
		}
		select {
		case <-n.connected:
		default:
			return nil // stopped before connecting
		}
		if n.router != nil {
			// Forwarded replies can arrive as soon as a request is
			// claimed: listen before the node consumes and turns ready.
			l, err := n.router.Listen(consumeCtx, n.cfg.Node, func(rep envelope.Reply) {
				n.gw.AcceptForwarded(consumeCtx, rep)
			})
			if err != nil {
				return fmt.Errorf("cluster: listen for forwarded replies: %w", err)
			}
			listener <- l
		}
		close(start)
		return nil
	})
	if d := n.cfg.Broker.WaitFor; d > 0 {
		consumers.Go(func() error { return n.waitForBroker(consumeCtx, d) })
	}
	started := func() bool {
		select {
		case <-start:
			return true
		case <-consumeCtx.Done():
			return false
		}
	}
	var pending atomic.Int32
	pending.Store(1)
	if n.cfg.Demo.Enabled {
		pending.Add(1)
	}
	var readyOnce sync.Once
	positioned := func() {
		if pending.Add(-1) == 0 {
			readyOnce.Do(func() { close(n.ready) })
		}
	}
	replies := instrument.ReplyHandler(n.gw.DispatchReply, n.metrics)
	// With RabbitMQ's direct reply-to a reply address belongs to a
	// connection: there is no queue a dead node leaves behind to adopt.
	directReplyTo := n.cfg.Broker.Kind == "rabbitmq" && n.cfg.Broker.RabbitMQ.DirectReplyTo
	if n.router != nil && !directReplyTo {
		n.adopter = n.newAdopter(replies)
		consumers.Go(func() error {
			if started() {
				n.adopter.Run(consumeCtx)
			}
			return nil
		})
	}
	consumers.Go(func() error {
		if !started() {
			return nil
		}
		if n.router != nil {
			// The adoption's TTL is three lease TTLs (see gateway.Adopter).
			gateway.AwaitHandBack(consumeCtx, n.router, n.cfg.Node, 3*n.cfg.Cluster.LeaseTTL, n.log)
		}
		err := n.broker.Subscribe(consumeCtx, n.cfg.ReplyTo, replies,
			brokers.AsInbox(), brokers.WithReady(positioned), brokers.WithConcurrency(n.cfg.Broker.ReplyConcurrency))
		if errors.Is(err, brokers.ErrInUse) {
			return fmt.Errorf("node id %q: another live process consumes its reply address %q; "+
				"give every process its own node id (--node): %w", n.cfg.Node, n.cfg.ReplyTo, err)
		}
		if err != nil {
			return fmt.Errorf("reply consumer: %w", err)
		}
		return nil
	})
	if n.jwt != nil {
		consumers.Go(func() error {
			n.jwt.Run(consumeCtx) // fetches and refreshes the JWKS until shutdown
			return nil
		})
	}
	if n.tap != nil {
		// Exchanges are recorded until the last request is answered; what
		// is queued then gets taps.flush to be written.
		consumers.Go(func() error {
			if err := n.tap.Run(consumeCtx, n.cfg.Taps.Flush); err != nil {
				n.log.Warn("tap: closing the sinks failed", slog.Any("error", err))
			}
			return nil
		})
	}
	if n.relay != nil {
		// The relay publishes while requests drain: what they queue gets
		// its chance too. What is left stays in the store, for this node
		// when it is back, or (postgres) another node.
		consumers.Go(func() error {
			if started() {
				return n.relay.Run(consumeCtx)
			}
			return nil
		})
	}
	if n.deliverer != nil {
		// Deliveries go on while requests drain; one under way at the
		// end is cancelled and left to its lease (another node, or this
		// one when it is back).
		consumers.Go(func() error {
			if started() {
				return n.deliverer.Run(consumeCtx)
			}
			return nil
		})
	}
	if n.results != nil {
		consumers.Go(func() error {
			n.results.Run(consumeCtx) // reclaims expired results until shutdown
			return nil
		})
	}
	if n.cfg.Demo.Enabled {
		svc := &responder.Service{Subscriber: n.broker, Publisher: n.broker, Logger: n.log}
		if n.tracing.Recording() {
			// The demo service's own spans; without an exporter it copies
			// the request's trace context to the reply, as services that
			// do not trace do.
			svc.Tracer, svc.Propagator = n.tracing.Tracer, n.tracing.Propagator
		}
		consumers.Go(func() error {
			if err := demo.Serve(consumeCtx, svc, positioned, brokers.WithConcurrency(n.cfg.Demo.Concurrency)); err != nil {
				return fmt.Errorf("demo service: %w", err)
			}
			return nil
		})
	}

	serveErr := make(chan error, 1)
	if n.tls != nil {
		// The files are watched until Run returns: a renewal during a long
		// drain still reaches new handshakes.
		reloadCtx, stopReload := context.WithCancel(context.WithoutCancel(ctx))
		reloadDone := make(chan struct{})
		defer func() { stopReload(); <-reloadDone }()
		go func() { defer close(reloadDone); n.tls.Run(reloadCtx) }()
		srv.TLSConfig = n.tls.TLSConfig()
		go func() { serveErr <- srv.ServeTLS(n.ln, "", "") }()
	} else {
		go func() { serveErr <- srv.Serve(n.ln) }()
	}
	// The admin listener serves until the API listener has drained, so
	// that readiness and metrics stay observable during a shutdown.
	adminDone := make(chan struct{})
	var adminSrv *http.Server
	if n.adminLn != nil {
		adminSrv = &http.Server{Handler: n.admin, ReadHeaderTimeout: n.cfg.HTTP.ReadHeaderTimeout,
			ErrorLog: serverErrorLog(n.log)}
		go func() {
			defer close(adminDone)
			if err := adminSrv.Serve(n.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.log.Warn("admin listener stopped", slog.Any("error", err))
			}
		}()
	} else {
		close(adminDone)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	case <-consumeCtx.Done():
		// consumers.Wait below says why; this stands if it does not.
		runErr = errConsumerStopped
	}
	n.shutdown(srv, runErr == nil)
	if adminSrv != nil {
		_ = adminSrv.Close()
	}
	<-adminDone
	stopConsumers()
	if err := consumers.Wait(); err != nil && (runErr == nil || runErr == errConsumerStopped) && !errors.Is(err, context.Canceled) {
		runErr = err
	}
	if err := n.broker.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("close broker: %w", err)
	}
	if n.outbox != nil {
		if err := n.outbox.Close(); err != nil && runErr == nil {
			runErr = fmt.Errorf("close outbox: %w", err)
		}
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) && runErr == nil {
		runErr = fmt.Errorf("http server: %w", err)
	}
	n.log.Info("stopped", slog.Any("error", runErr))
	return runErr
}
