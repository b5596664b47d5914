package middleware

import (
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
)

// Recoverer turns a panic in a handler into a logged error and a response
// written by onPanic (the API writes a 500 problem). http.ErrAbortHandler is
// re-panicked, as net/http expects.
func Recoverer(log *slog.Logger, onPanic http.HandlerFunc) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				p := recover()
				if p == nil {
					return
				}
				if err, ok := p.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(p)
				}
				log.ErrorContext(r.Context(), "handler panicked", slog.Any("panic", p),
					slog.String("path", r.URL.Path), slog.String("stack", string(debug.Stack())))
				onPanic(w, r)
			}()
			next.ServeHTTP(w, r)
		})
	}
}
