package middleware

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics instruments HTTP requests on reg:
//
//   - syncgate_http_requests_total{route,mode,status}
//   - syncgate_http_request_duration_seconds{route,mode} (histogram)
//   - syncgate_http_in_flight_requests
//
// route is the chi route pattern that matched ("/v1/requests/{id}", never the
// raw path, so the label stays bounded; "unmatched" when none did) and mode
// the configured route's mode from Info ("" off the configured routes). Run
// it inside WithInfo.
func Metrics(reg prometheus.Registerer) func(http.Handler) http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "syncgate_http_requests_total",
		Help: "HTTP requests answered, by route pattern, route mode and status code.",
	}, []string{"route", "mode", "status"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "syncgate_http_request_duration_seconds",
		Help:    "Time from request to answer, by route pattern and mode.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"route", "mode"})
	inFlight := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "syncgate_http_in_flight_requests",
		Help: "HTTP requests being served.",
	})
	reg.MustRegister(requests, duration, inFlight)
	// The label sets are few (routes × modes × statuses): resolve each once,
	// not twice per request (label validation and hashing show in profiles).
	var series sync.Map // seriesKey → *seriesPair
	lookup := func(route, mode string, status int) *seriesPair {
		k := seriesKey{route, mode, status}
		if p, ok := series.Load(k); ok {
			return p.(*seriesPair)
		}
		p := &seriesPair{
			requests: requests.WithLabelValues(route, mode, strconv.Itoa(status)),
			duration: duration.WithLabelValues(route, mode),
		}
		actual, _ := series.LoadOrStore(k, p)
		return actual.(*seriesPair)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info := InfoFrom(r.Context())
			var start time.Time
			if info != nil {
				start = info.Start
			} else {
				start = time.Now()
			}
			inFlight.Inc()
			defer inFlight.Dec()
			next.ServeHTTP(w, r)
			observe(lookup, r, info, start)
		})
	}
}

// observe counts the answered request and its duration. Out of line, so
// that its frame is not on the stack of every waiting request (issue 17).
//
//go:noinline
func observe(lookup func(route, mode string, status int) *seriesPair, r *http.Request, info *Info, start time.Time) {
	route := routePattern(r)
	if route == "" {
		route = "unmatched"
	}
	var mode string
	if info != nil {
		mode = info.Mode
	}
	p := lookup(route, mode, statusOf(r, info))
	p.requests.Inc()
	p.duration.Observe(time.Since(start).Seconds())
}

type seriesKey struct {
	route, mode string
	status      int
}

type seriesPair struct {
	requests prometheus.Counter
	duration prometheus.Observer
}
