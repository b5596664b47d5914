package middleware

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/syncgate/syncgate/ratelimit"
)

// RateLimitPolicy is a named limit. The name is the policy's in the
// RateLimit-Policy and RateLimit headers, and part of every bucket's key:
// requests under two policies never share a bucket.
type RateLimitPolicy struct {
	Name  string
	Limit ratelimit.Limit
}

// RateLimit counts every request against its caller's bucket under p: the
// principal's (see Principal) or, for an anonymous request, its client IP
// address's (the host of RemoteAddr; X-Forwarded-For and the like are never
// read, so behind a proxy every anonymous caller shares the proxy's
// bucket). Run it after Auth, before the body is read.
//
// Every answer carries the headers of draft-ietf-httpapi-ratelimit-headers-11:
// RateLimit-Policy (q requests per w seconds, with the burst as
// syncgate-burst) and RateLimit (r requests left; t seconds until the quota
// is whole again, or until the next request is admitted when refused). A
// refused request goes to reject with the decision. A limiter error lets
// the request through: the limiter owns its outage policy (redislimit
// decides with the node's own limiter while Redis is down).
func RateLimit(l ratelimit.Limiter, p RateLimitPolicy, reject func(http.ResponseWriter, *http.Request, ratelimit.Decision)) func(http.Handler) http.Handler {
	name := sfString(p.Name)
	policy := name + ";q=" + strconv.Itoa(p.Limit.Rate) + ";w=" + strconv.FormatInt(ceilSeconds(p.Limit.Per), 10) +
		";syncgate-burst=" + strconv.Itoa(p.Limit.Burst)
	keyPrefix := url.QueryEscape(p.Name) + ":" // no ':' in the name: keys cannot collide
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			kind, id := caller(r)
			d, err := l.Allow(r.Context(), keyPrefix+kind+id, p.Limit)
			if err != nil {
				next.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			// Canonical names: Set does not allocate a new one per request.
			h.Set("Ratelimit-Policy", policy)
			if !d.Allowed {
				h.Set("Ratelimit", name+";r=0;t="+strconv.FormatInt(max(1, ceilSeconds(d.RetryAfter)), 10))
				reject(w, r, d)
				return
			}
			h.Set("Ratelimit", name+";r="+strconv.Itoa(d.Remaining)+";t="+strconv.FormatInt(ceilSeconds(d.ResetAfter), 10))
			next.ServeHTTP(w, r)
		})
	}
}

// caller is whose bucket a request counts against: the kind of caller
// ("p:" principal, "ip:" address) and its name.
func caller(r *http.Request) (kind, id string) {
	if p := Principal(r.Context()); p != "" {
		return "p:", p
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "ip:", host
}

// ceilSeconds renders d as whole seconds, rounded up.
func ceilSeconds(d time.Duration) int64 {
	return int64((max(0, d) + time.Second - 1) / time.Second)
}

// sfString renders s as a structured-field String (RFC 9651 §3.3.3):
// quoted, with '"' and '\' escaped; characters outside printable ASCII,
// which a String cannot hold, become '?'.
func sfString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range []byte(s) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			b.WriteByte('?')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
