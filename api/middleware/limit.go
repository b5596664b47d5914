package middleware

import (
	"context"
	"net/http"
	"sync"
)

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
				info := InfoFrom(r.Context())
				if info != nil && info.nheld < len(info.held) {
					info.held[info.nheld] = sem
					info.nheld++
				}
				defer func() {
					if info == nil || !info.keepAll {
						<-sem
					}
				}()
				next.ServeHTTP(w, r)
			default:
				reject(w, r)
			}
		})
	}
}

// KeepInFlight keeps the in-flight slots the request holds (InFlight)
// after its handler returns, for work that outlives it (an event stream
// served by a goroutine of its own), and returns the function that gives
// them back, once, when that work ends. Without WithInfo it keeps nothing.
func KeepInFlight(ctx context.Context) (release func()) {
	info := InfoFrom(ctx)
	if info == nil || info.nheld == 0 {
		return func() {}
	}
	info.keepAll = true
	held := append([]chan struct{}(nil), info.held[:info.nheld]...) // not a slice of Info: it would keep Info alive
	var once sync.Once
	return func() {
		once.Do(func() {
			for _, sem := range held {
				<-sem
			}
		})
	}
}
