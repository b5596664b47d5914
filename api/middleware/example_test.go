package middleware_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/syncgate/syncgate/api/middleware"
)

// Lines logged with a request's context carry its attributes; the access
// log adds one line per request.
func ExampleContextHandler() {
	base := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "duration" {
				return slog.Attr{} // keep the output stable
			}
			return a
		},
	})
	log := slog.New(middleware.ContextHandler(base)).With("node", "gw-1")
	h := middleware.WithInfo(middleware.AccessLog(log)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := middleware.InfoFrom(r.Context())
		info.Route, info.CorrelationID = "orders", "019ab5c2-8a2e-7c43-9d1b-5b0e2f7c9a10"
		log.InfoContext(r.Context(), "publishing")
		w.WriteHeader(http.StatusAccepted)
	})))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/orders/7", nil))
	// Output:
	// level=INFO msg=publishing node=gw-1 correlation_id=019ab5c2-8a2e-7c43-9d1b-5b0e2f7c9a10 route=orders
	// level=INFO msg=request node=gw-1 method=POST path=/orders/7 pattern="" status=202 bytes=0 correlation_id=019ab5c2-8a2e-7c43-9d1b-5b0e2f7c9a10 route=orders
}
