package api

import (
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"
)

// AdminOptions configures the admin listener's handler (admin_addr).
type AdminOptions struct {
	// Checks are the same readiness checks as the API's /readyz.
	Checks []Check
	// Metrics, when set, is served at /metrics.
	Metrics http.Handler
	Logger  *slog.Logger
}

// NewAdmin returns the handler of the admin listener: /healthz, /readyz
// with every failing check's error (addresses included; ?verbose is
// accepted and changes nothing here) and /metrics. It is meant for a
// listener the API's callers cannot reach; the API's own /readyz then
// names the failing checks only, ?verbose or not (Options.ReadyzNamesOnly).
func NewAdmin(o AdminOptions) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &server{log: o.Logger.With(slog.String("component", "admin")), checks: o.Checks}
	r := chi.NewRouter()
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyzVerbose)
	if o.Metrics != nil {
		r.Method(http.MethodGet, "/metrics", o.Metrics)
	}
	return r
}
