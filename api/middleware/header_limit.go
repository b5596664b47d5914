package middleware

import "net/http"

// HeaderLimit refuses requests whose request line and headers exceed max
// bytes (counted as on the wire: name, ": ", value, CRLF), with reject (the
// API answers a 431 problem). net/http's own MaxHeaderBytes stays as the
// hard backstop above it, answering a plain 431 before any handler runs.
// max <= 0 means no limit.
func HeaderLimit(max int, reject http.HandlerFunc) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if max <= 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if HeaderSize(r) > max {
				reject(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// HeaderSize returns the size of the request line and headers in bytes.
func HeaderSize(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	if r.Host != "" {
		n += len("Host: ") + len(r.Host) + 2
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n + 2
}
