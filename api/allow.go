package api

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
)

// probedMethods are the methods a 405's Allow header may list.
var probedMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace,
}

// allowedMethods lists the methods the router serves on r's path, for the
// Allow header a 405 must carry (RFC 9110 §15.5.6). chi knows them but
// gives them only to its own 405 handler, so ask the router per method:
// this runs on 405s only.
func allowedMethods(r *http.Request) string {
	rctx := chi.RouteContext(r.Context())
	if rctx == nil || rctx.Routes == nil {
		return ""
	}
	path := rctx.RoutePath // as chi routes: the routing path, else the raw path
	if path == "" {
		path = r.URL.RawPath
	}
	if path == "" {
		path = r.URL.Path
	}
	var allowed []string
	for _, m := range probedMethods {
		if rctx.Routes.Match(chi.NewRouteContext(), m, path) {
			allowed = append(allowed, m)
		}
	}
	return strings.Join(allowed, ", ")
}
