package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncgate/syncgate/api/middleware"
	"github.com/syncgate/syncgate/ratelimit"
)

// DefaultRateLimitPolicy names Options.RateLimit in the RateLimit headers.
const DefaultRateLimitPolicy = "default"

// rateLimits builds each route's rate-limit middleware.
type rateLimits struct {
	limiter  ratelimit.Limiter
	def      *ratelimit.Limit
	rejected *prometheus.CounterVec // nil without a Registerer
}

func newRateLimits(o Options) (*rateLimits, error) {
	rl := &rateLimits{limiter: o.RateLimiter, def: o.RateLimit}
	limited := o.RateLimit != nil
	if o.RateLimit != nil {
		if err := validRateLimit(*o.RateLimit); err != nil {
			return nil, fmt.Errorf("api: rate limit: %w", err)
		}
	}
	for _, rt := range o.Routes {
		limited = limited || rt.RateLimit != nil
	}
	if !limited {
		return rl, nil
	}
	if rl.limiter == nil {
		rl.limiter = ratelimit.NewMemory(ratelimit.MemoryConfig{})
	}
	if o.Registerer != nil {
		rl.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncgate_http_rate_limited_total",
			Help: "Requests refused with 429 rate-limited, by route pattern.",
		}, []string{"route"})
		if err := o.Registerer.Register(rl.rejected); err != nil {
			return nil, fmt.Errorf("api: rate limit metric: %w", err)
		}
	}
	return rl, nil
}

// validRateLimit refuses a limit the headers cannot state: the window
// (w) is whole seconds.
func validRateLimit(l ratelimit.Limit) error {
	if err := l.Validate(); err != nil {
		return err
	}
	if l.Per%time.Second != 0 {
		return errors.New("per must be a whole number of seconds (the RateLimit-Policy window)")
	}
	return nil
}

// middleware limits the route at pattern (named name) by its own limit,
// else the default one; off or no limit at all: none.
func (rl *rateLimits) middleware(pattern, name string, own *ratelimit.Limit, off bool) func(http.Handler) http.Handler {
	p := middleware.RateLimitPolicy{Name: DefaultRateLimitPolicy}
	switch {
	case off || own == nil && rl.def == nil:
		return func(h http.Handler) http.Handler { return h }
	case own != nil:
		p = middleware.RateLimitPolicy{Name: name, Limit: *own}
		if p.Name == "" {
			p.Name = pattern
		}
	default:
		p.Limit = *rl.def
	}
	var rejected prometheus.Counter
	if rl.rejected != nil {
		rejected = rl.rejected.WithLabelValues(pattern)
	}
	detail := safeDetail(ProblemRateLimited)
	return middleware.RateLimit(rl.limiter, p, func(w http.ResponseWriter, r *http.Request, d ratelimit.Decision) {
		if rejected != nil {
			rejected.Inc()
		}
		w.Header().Set("Retry-After", retryAfterSeconds(d.RetryAfter))
		WriteProblem(w, r, ProblemRateLimited, detail, "")
	})
}
