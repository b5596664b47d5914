package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/syncgate/syncgate/api/middleware"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
)

// Gateway is what the HTTP layer needs of the use case.
type Gateway interface {
	Do(ctx context.Context, req gateway.Request) (gateway.Outcome, error)
	Result(ctx context.Context, id string) (correlation.Result, error)
}

// Route binds an HTTP method and path to a gateway route.
type Route struct {
	Method string
	// Path is a chi pattern ("/orders/{id}").
	Path  string
	Route *gateway.Route
	// MaxBody caps the request body in bytes (413 above it).
	MaxBody int64
	// ForwardHeaders lists the request headers passed to the service as
	// http-header-<name>; others are not forwarded.
	ForwardHeaders []string
}

// Options configures the HTTP handler.
type Options struct {
	Gateway Gateway
	Routes  []Route
	Logger  *slog.Logger
	// Ready reports readiness for /readyz; nil means always ready.
	Ready func() error
	// Metrics, when set, is served at /metrics.
	Metrics http.Handler
	// RetryAfter is the poll interval suggested while a request is pending
	// (default 1 s).
	RetryAfter time.Duration
}

// PollPath is where clients poll for a result; Location headers point here.
const PollPath = "/v1/requests/"

// New returns the gateway's HTTP handler.
func New(o Options) (http.Handler, error) {
	if o.Gateway == nil {
		return nil, errors.New("api: no gateway")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Second
	}
	s := &server{gw: o.Gateway, log: o.Logger, ready: o.Ready, retryAfter: o.RetryAfter}
	r := chi.NewRouter()
	r.Use(middleware.Recoverer(o.Logger, func(w http.ResponseWriter, req *http.Request) {
		WriteProblem(w, req, ProblemInternal, "", "")
	}))
	r.Use(middleware.RequestID)
	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		WriteProblem(w, req, ProblemNotFound, fmt.Sprintf("no route for %s %s", req.Method, req.URL.Path), "")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		WriteProblem(w, req, ProblemMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s", req.Method, req.URL.Path), "")
	})
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Get(PollPath+"{id}", s.poll)
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
		if strings.HasPrefix(rt.Path, PollPath) || rt.Path == "/healthz" || rt.Path == "/readyz" || rt.Path == "/metrics" {
			return nil, fmt.Errorf("api: routes[%d]: path %s is reserved", i, rt.Path)
		}
		r.Method(strings.ToUpper(rt.Method), rt.Path, s.routeHandler(rt))
	}
	return r, nil
}

type server struct {
	gw         Gateway
	log        *slog.Logger
	ready      func() error
	retryAfter time.Duration
}

func (s *server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.ready != nil {
		if err := s.ready(); err != nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
	}
	s.healthz(w, r)
}
