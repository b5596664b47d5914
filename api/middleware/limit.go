package middleware

import "net/http"

// InFlight admits at most max requests at once; the others are refused at
// once by reject (the API answers a 503 problem with Retry-After). It is a
// semaphore, not a queue: a burst never piles up waiting goroutines.
// max <= 0 means no limit.
func InFlight(max int, reject http.HandlerFunc) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if max <= 0 {
			return next
		}
		sem := make(chan struct{}, max)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
				next.ServeHTTP(w, r)
			default:
				reject(w, r)
			}
		})
	}
}
