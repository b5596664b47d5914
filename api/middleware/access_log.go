package middleware

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
)

// AccessLog logs one line at info per request (at debug for the probes
// /healthz, /readyz and /metrics), after it was answered:
// method, path, the matched route pattern, status, response bytes and
// duration, and the principal of an authenticated request. Run it inside
// WithInfo and log through ContextHandler to get the correlation id, route,
// trace id and request id on the line too (read from Info: this middleware
// sees only the outer context).
func AccessLog(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			level := slog.LevelInfo
			if probePaths[r.URL.Path] {
				level = slog.LevelDebug
			}
			if !log.Enabled(ctx, level) {
				next.ServeHTTP(w, r)
				return
			}
			info := InfoFrom(ctx)
			var start time.Time
			if info != nil {
				start = info.Start
			} else {
				start = time.Now()
			}
			next.ServeHTTP(w, r)
			logRequest(log, level, r, info, start)
		})
	}
}

// logRequest writes the access line. It is a function of its own, kept out
// of line, so that its attributes take stack only once the request is
// answered, not in the frame every waiting request holds (issue 17).
//
//go:noinline
func logRequest(log *slog.Logger, level slog.Level, r *http.Request, info *Info, start time.Time) {
	var size int64
	if info != nil {
		size = info.Bytes
	}
	status := statusOf(r, info)
	attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.String("pattern", routePattern(r)), slog.Int("status", status),
		slog.Int64("bytes", size), slog.Duration("duration", time.Since(start))}
	if info != nil && info.Principal != "" {
		attrs = append(attrs, slog.String("principal", info.Principal))
	}
	log.LogAttrs(r.Context(), level, "request", attrs...)
}

// probePaths are polled by orchestrators and scrapers every few seconds:
// their access lines are logged at debug, so that info shows traffic.
var probePaths = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// routePattern returns the chi pattern the request matched ("" if none):
// a bounded label, unlike the raw path.
func routePattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		return rc.RoutePattern()
	}
	return ""
}
