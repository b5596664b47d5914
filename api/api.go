package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncgate/syncgate/api/middleware"
	"github.com/syncgate/syncgate/gateway"
	"github.com/syncgate/syncgate/internal/telemetry"
	"github.com/syncgate/syncgate/push/webhook"
	"github.com/syncgate/syncgate/ratelimit"
	"github.com/syncgate/syncgate/tap"
)

// Gateway is what the HTTP layer needs of the use case.
type Gateway = gateway.Service

// Route binds an HTTP method and path to a gateway route.
type Route struct {
	Method string
	// Path is a chi pattern ("/orders/{id}").
	Path  string
	Route *gateway.Route
	// MaxBody caps the request body in bytes (413 above it).
	MaxBody int64
	// MaxInFlight caps the requests this route serves at once (503
	// route-overloaded above it); 0 means only the global limit applies.
	MaxInFlight int
	// ForwardHeaders lists the request headers passed to the service as
	// http-header-<name>; others are not forwarded.
	ForwardHeaders []string
	// Auth is the route's authentication mode; "" is required when
	// Options.Auth is set. Without Options.Auth only "" and none are valid.
	Auth middleware.AuthMode
	// RateLimit, when set, is the route's own limit, instead of
	// Options.RateLimit: a bucket per caller for this route alone, under a
	// policy named after the route. NoRateLimit exempts the route.
	RateLimit   *ratelimit.Limit
	NoRateLimit bool
	// Key, when set, builds each request's message key (ParseKeyTemplate);
	// nil keys messages by their correlation id.
	Key *KeyTemplate
	// Callback, when set, lets callers name a Callback-Url (a webhook for
	// the reply of a request answered 202), checked by this guard before
	// anything is published; nil refuses the header. Route.CallbackWindow
	// must be set with it.
	Callback *webhook.Guard
	// Tap, when set, records each exchange of the route (tap.Recorder):
	// the request as it came (headers but TapRedact), the outcome, the
	// reply, timings; bodies capped at TapMaxBody bytes (negative: whole,
	// 0: left out).
	Tap        *tap.Recorder
	TapMaxBody int
	TapRedact  map[string]bool
	// Node names the node in the exchanges Tap records.
	Node string
}

// Options configures the HTTP handler.
type Options struct {
	Gateway Gateway
	Routes  []Route
	// Logger logs errors and, at info, one access line per request, under
	// component api (default slog.Default()). Give it a
	// middleware.ContextHandler to get correlation_id, route and trace_id on
	// every line about a request.
	Logger *slog.Logger
	// Checks are the readiness checks of /readyz, all of which must pass.
	Checks []Check
	// ReadyzNamesOnly makes /readyz?verbose name the failing checks without
	// their errors too: set when an admin listener (NewAdmin) serves the
	// full view. Without it, /readyz names the failing checks and
	// /readyz?verbose adds their errors (which hold addresses), behind a
	// credential when Auth is set.
	ReadyzNamesOnly bool
	// Metrics, when set, is served at /metrics.
	Metrics http.Handler
	// Registerer, when set, receives the HTTP request metrics.
	Registerer prometheus.Registerer
	// Tracing starts the server spans and carries trace context (default:
	// telemetry.Disabled, which records nothing and only propagates).
	Tracing *telemetry.Tracing
	// RetryAfter is the poll interval suggested while a request is pending,
	// and the Retry-After of 503 overload answers (default 1 s).
	RetryAfter time.Duration
	// MaxInFlight caps the requests served at once on the routes and the
	// poll endpoint (503 overloaded above it); health and metrics are
	// exempt. 0 means no limit.
	MaxInFlight int
	// MaxHeaderBytes caps the request line and headers (431 above it);
	// 0 means no limit beyond the server's.
	MaxHeaderBytes int
	// BodyTimeout caps the time to read a request body (408 above it);
	// 0 means no limit beyond the server's.
	BodyTimeout time.Duration
	// MaxPollWait caps ?wait= on GET /v1/requests/{id} (default 30 s).
	MaxPollWait time.Duration
	// Auth, when set, authenticates the bearer credential of the routes
	// (per Route.Auth) and of GET/DELETE /v1/requests/{id} (optional:
	// the principal, or anonymous, decides which requests are found);
	// the principal is then available through Principal. nil: no
	// authentication, as before auth existed.
	Auth middleware.Authenticator
	// RateLimit, when set, limits each caller (principal, or client IP
	// address when anonymous; see middleware.RateLimit) on the routes and
	// on GET/DELETE /v1/requests/{id}: one bucket per caller, the policy
	// "default", shared by every route without a limit of its own. Over
	// it: 429 rate-limited with Retry-After. nil: no limit but the
	// routes' own.
	RateLimit *ratelimit.Limit
	// RateLimiter decides the limits (default: a ratelimit.Memory, this
	// node's alone; a cluster passes a redislimit.Limiter).
	RateLimiter ratelimit.Limiter
	// StreamHeartbeat is how often an idle event stream gets a comment
	// that keeps proxies from closing it (default
	// DefaultStreamHeartbeat); StreamWriteTimeout cuts off a client that
	// does not read its stream (default DefaultStreamWriteTimeout).
	StreamHeartbeat, StreamWriteTimeout time.Duration
	// EndStreams, when it ends, ends the event streams with a shutdown
	// event (the node stops: they reconnect elsewhere). Streams also end
	// when the gateway closes. nil: only then.
	EndStreams context.Context
	// StreamGroup, when set, counts the goroutines that serve event
	// streams after their handlers returned (HTTP/1 streams run on their
	// own): the caller waits on it at shutdown, after EndStreams ended.
	StreamGroup *sync.WaitGroup
	// AbortUploads, when it ends, gives up on the request bodies still being
	// read (the end of a graceful shutdown's drain): each such request is
	// answered 503 shutting-down at once, and nothing is published. nil:
	// never.
	AbortUploads context.Context
}

// Check is one named readiness check; Check returns nil when ready.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
	// Degrades marks a check whose failure leaves the node able to serve
	// part of its traffic (Redis in cluster mode): /readyz still answers
	// 200, with the failure listed under "degraded".
	Degrades bool
	// Info, when set, is a line /readyz?verbose shows of a check that
	// passes (an outbox's depth); "" shows nothing.
	Info func(ctx context.Context) string
}

// PollPath is where clients poll for a result; Location headers point here.
const PollPath = "/v1/requests/"

// New returns the gateway's HTTP handler with its middleware stack, outer
// to inner: request info, metrics, access log, panic recovery, request id,
// trace context, header limit; then the global in-flight limit on routes
// and polls, authentication (Options.Auth, per Route.Auth), the rate limit
// (Options.RateLimit, Route.RateLimit), and each route's own in-flight
// limit.
func New(o Options) (http.Handler, error) {
	if o.Gateway == nil {
		return nil, errors.New("api: no gateway")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Logger = o.Logger.With(slog.String("component", "api"))
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Second
	}
	if o.MaxPollWait <= 0 {
		o.MaxPollWait = 30 * time.Second
	}
	if o.StreamHeartbeat <= 0 {
		o.StreamHeartbeat = DefaultStreamHeartbeat
	}
	if o.StreamWriteTimeout <= 0 {
		o.StreamWriteTimeout = DefaultStreamWriteTimeout
	}
	s := &server{gw: o.Gateway, log: o.Logger, checks: o.Checks, retryAfter: o.RetryAfter,
		bodyTimeout: o.BodyTimeout, maxPollWait: o.MaxPollWait, abortUploads: o.AbortUploads,
		streamHeartbeat: o.StreamHeartbeat, streamWriteTimeout: o.StreamWriteTimeout, endStreams: o.EndStreams,
		streamGroup: o.StreamGroup}
	if s.streamGroup == nil {
		s.streamGroup = new(sync.WaitGroup)
	}
	s.streamMetrics(o.Registerer)
	tr := o.Tracing
	if tr == nil {
		tr = telemetry.Disabled()
	}
	s.tracer, s.prop, s.recording = tr.Tracer, tr.Propagator, tr.Recording()
	r := chi.NewRouter()
	r.Use(middleware.Tracing(s.tracer, s.prop)) // and WithInfo
	if o.Registerer != nil {
		r.Use(middleware.Metrics(o.Registerer))
	}
	r.Use(middleware.AccessLog(o.Logger))
	r.Use(middleware.Recoverer(o.Logger, func(w http.ResponseWriter, req *http.Request) {
		WriteProblem(w, req, ProblemInternal, "", "")
	}))
	r.Use(middleware.RequestID)
	r.Use(middleware.HeaderLimit(o.MaxHeaderBytes, func(w http.ResponseWriter, req *http.Request) {
		WriteProblem(w, req, ProblemHeaderTooLarge, fmt.Sprintf("the request line and headers exceed %d bytes", o.MaxHeaderBytes), "")
	}))
	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		WriteProblem(w, req, ProblemNotFound, fmt.Sprintf("no route for %s %s", req.Method, req.URL.Path), "")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		if allow := allowedMethods(req); allow != "" {
			w.Header().Set("Allow", allow)
		}
		WriteProblem(w, req, ProblemMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s", req.Method, req.URL.Path), "")
	})
	r.Get("/healthz", s.healthz)
	r.Get(OpenAPIPath, serveOpenAPI)
	verbose := http.Handler(http.HandlerFunc(s.readyzVerbose))
	if o.ReadyzNamesOnly {
		verbose = http.HandlerFunc(s.readyz)
	}
	verbose = middleware.Auth(o.Auth, middleware.AuthRequired, s.unauthorized)(verbose)
	r.Get("/readyz", func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Query().Has("verbose") {
			verbose.ServeHTTP(w, req)
			return
		}
		s.readyz(w, req)
	})
	if o.Metrics != nil {
		r.Method(http.MethodGet, "/metrics", o.Metrics)
	}

	seen := make(map[string]bool)
	for i, rt := range o.Routes {
		if rt.Route == nil || rt.Path == "" || rt.Method == "" {
			return nil, fmt.Errorf("api: routes[%d]: method, path and route are required", i)
		}
		key := strings.ToUpper(rt.Method) + " " + rt.Path
		if seen[key] {
			return nil, fmt.Errorf("api: routes[%d]: %s is configured twice", i, key)
		}
		seen[key] = true
		switch rt.Auth {
		case "", middleware.AuthNone:
		case middleware.AuthRequired, middleware.AuthOptional:
			if o.Auth == nil {
				return nil, fmt.Errorf("api: routes[%d]: auth %s needs an authenticator", i, rt.Auth)
			}
		default:
			return nil, fmt.Errorf("api: routes[%d]: auth %q is not required, optional or none", i, rt.Auth)
		}
		if rt.RateLimit != nil {
			if err := validRateLimit(*rt.RateLimit); err != nil {
				return nil, fmt.Errorf("api: routes[%d]: rate limit: %w", i, err)
			}
		}
		if rt.Callback != nil && (rt.Route.Mode == gateway.ModeSync || rt.Route.CallbackWindow <= 0) {
			return nil, fmt.Errorf("api: routes[%d]: a callback needs a route that may answer 202 and a callback window", i)
		}
		if strings.HasPrefix(rt.Path, PollPath) || rt.Path == "/healthz" || rt.Path == "/readyz" || rt.Path == "/metrics" || rt.Path == OpenAPIPath {
			return nil, fmt.Errorf("api: routes[%d]: path %s is reserved", i, rt.Path)
		}
	}
	limits, err := newRateLimits(o)
	if err != nil {
		return nil, err
	}
	// A refused credential counts against its client address's bucket
	// under the default limit, as an anonymous request does: guessing keys
	// or tokens is throttled like any other traffic.
	s.refused = limits.middleware("(credential refused)", "", nil, false)(invalidToken)
	r.Group(func(r chi.Router) {
		r.Use(middleware.InFlight(o.MaxInFlight, s.overloaded(ProblemOverloaded, o.MaxInFlight)))
		// Polls take a credential when one comes (a bad one is 401) and
		// act for its principal: a request is only its own principal's to
		// poll or cancel (anybody else's 404), so an anonymous poller
		// reaches the anonymous requests of auth optional and none routes
		// only.
		pollAuth := middleware.Auth(o.Auth, middleware.AuthOptional, s.unauthorized)
		pollLimit := limits.middleware(PollPath+"{id}", "", nil, false)
		r.With(pollAuth, pollLimit).Get(PollPath+"{id}", s.poll)
		r.With(pollAuth, pollLimit).Delete(PollPath+"{id}", s.cancel)
		r.With(pollAuth, pollLimit).Get(PollPath+"{id}/callback", s.callbackStatus)
		for _, rt := range o.Routes {
			mode := rt.Auth
			if mode == "" {
				mode = middleware.AuthRequired
			}
			h := http.Handler(s.routeHandler(rt))
			h = middleware.InFlight(rt.MaxInFlight, s.overloaded(ProblemRouteOverloaded, rt.MaxInFlight))(h)
			h = limits.middleware(rt.Path, rt.Route.Name, rt.RateLimit, rt.NoRateLimit)(h)
			h = middleware.Auth(o.Auth, mode, s.unauthorized)(h)
			r.Method(strings.ToUpper(rt.Method), rt.Path, h)
		}
	})
	return r, nil
}

type server struct {
	// refused answers refused credentials: invalidToken behind the
	// default rate limit (nil outside New: invalidToken alone).
	refused     http.Handler
	gw          Gateway
	log         *slog.Logger
	checks      []Check
	retryAfter  time.Duration
	bodyTimeout time.Duration
	maxPollWait time.Duration
	// abortUploads: see Options.AbortUploads.
	abortUploads context.Context
	tracer       trace.Tracer
	prop         propagation.TextMapPropagator
	recording    bool // tr.Recording(): false skips the reply and poll spans' look-ups
	// Event streams: see stream.go.
	streamHeartbeat, streamWriteTimeout time.Duration
	endStreams                          context.Context
	streamGroup                         *sync.WaitGroup
	streams                             atomic.Int64
	streamEvents                        prometheus.Counter
	streamEnds                          *prometheus.CounterVec
}

// streamMetrics makes the event streams' metrics, registered with reg
// when it is set:
//
//   - syncgate_streams_open: event streams open now
//   - syncgate_stream_progress_events_total: progress events written
//   - syncgate_streams_ended_total{reason}: streams ended, by how: result,
//     cancelled, timeout, shutdown, error, client (it went away or did
//     not read)
func (s *server) streamMetrics(reg prometheus.Registerer) {
	s.streamEvents = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "syncgate_stream_progress_events_total",
		Help: "Progress events written to event streams.",
	})
	s.streamEnds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "syncgate_streams_ended_total",
		Help: "Event streams ended, by reason: result, cancelled, timeout, shutdown, error, client.",
	}, []string{"reason"})
	for _, r := range []string{eventResult, eventCancelled, eventTimeout, eventShutdown, eventError, "client"} {
		s.streamEnds.WithLabelValues(r)
	}
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "syncgate_streams_open",
		Help: "Event streams (GET /v1/requests/{id}, Accept: text/event-stream) open now.",
	}, func() float64 { return float64(s.streams.Load()) })
	if reg != nil {
		reg.MustRegister(s.streamEvents, s.streamEnds, open)
	}
}

func (s *server) overloaded(pt ProblemType, limit int) http.HandlerFunc {
	detail := fmt.Sprintf("more than %d requests in flight; retry later", limit)
	retry := strconv.FormatInt(int64(max(1, (s.retryAfter+time.Second-1)/time.Second)), 10)
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", retry)
		WriteProblem(w, r, pt, detail, "")
	}
}

func (s *server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz runs every check and names the failing ones; their errors, which
// hold addresses, are for readyzVerbose.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) { s.ready(w, r, false) }

// readyzVerbose is readyz with each failing check's error.
func (s *server) readyzVerbose(w http.ResponseWriter, r *http.Request) { s.ready(w, r, true) }

func (s *server) ready(w http.ResponseWriter, r *http.Request, verbose bool) {
	var failed, degraded, info []string
	for _, c := range s.checks {
		err := c.Check(r.Context())
		if err == nil && verbose && c.Info != nil {
			if line := c.Info(r.Context()); line != "" {
				info = append(info, c.Name+": "+line)
			}
		}
		if err != nil {
			line := c.Name
			if verbose {
				line += ": " + err.Error()
			}
			if c.Degrades {
				degraded = append(degraded, line)
			} else {
				failed = append(failed, line)
			}
		}
	}
	switch {
	case len(failed) > 0:
		writeReadiness(w, http.StatusServiceUnavailable, "not ready", slices.Concat(failed, degraded, info))
	case len(degraded) > 0:
		writeReadiness(w, http.StatusOK, "ready (degraded)", slices.Concat(degraded, info))
	case len(info) > 0:
		writeReadiness(w, http.StatusOK, "ready", info)
	default:
		s.healthz(w, r)
	}
}

// writeReadiness writes a /readyz answer: its first line, then lines.
func writeReadiness(w http.ResponseWriter, status int, head string, lines []string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "%s\n%s\n", head, strings.Join(lines, "\n"))
}
