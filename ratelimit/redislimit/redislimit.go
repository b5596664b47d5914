// Package redislimit is the ratelimit.Limiter of a cluster: one bucket per
// key in Redis, shared by every node, decided by the generic cell rate
// algorithm of github.com/go-redis/redis_rate in one Lua script (atomic,
// on Redis's clock). While Redis fails, each node decides alone with its
// fallback limiter.
package redislimit

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/ratelimit"
)

// Config configures a Limiter.
type Config struct {
	// Prefix starts every key (the node's cluster.redis.prefix); the
	// buckets are <Prefix>ratelimit:<key>.
	Prefix string
	// Fallback decides while Redis fails (unreachable, too slow): the
	// limit then holds per node rather than across the cluster, and the
	// request is neither refused for the outage nor let through unlimited.
	// nil: a ratelimit.NewMemory of its defaults.
	Fallback ratelimit.Limiter
	// Timeout bounds one decision in Redis before the fallback decides
	// (default 250ms): a slow Redis must not stall every request.
	Timeout time.Duration
	// OnFallback, when set, is called for every decision the fallback
	// made (a metric).
	OnFallback func()
	// Logger gets a warning when decisions fall back to the node, at most
	// once per LogEvery (default 10s) with the count since the last one,
	// under component ratelimit (default slog.Default()).
	Logger   *slog.Logger
	LogEvery time.Duration
}

// Limiter is a ratelimit.Limiter in Redis. It never returns an error: a
// decision Redis cannot make is the fallback's.
type Limiter struct {
	rl  *redis_rate.Limiter
	cfg Config

	mu        sync.Mutex
	lastLog   time.Time
	fallbacks int // since lastLog
}

// New returns a Limiter on rdb. It does not connect: the first decision
// does.
func New(rdb goredis.UniversalClient, cfg Config) *Limiter {
	if cfg.Fallback == nil {
		cfg.Fallback = ratelimit.NewMemory(ratelimit.MemoryConfig{})
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 250 * time.Millisecond
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Logger = cfg.Logger.With(slog.String("component", "ratelimit"))
	return &Limiter{rl: redis_rate.NewLimiter(prefixed{rdb, cfg.Prefix + "ratelimit:"}), cfg: cfg}
}

// Allow implements ratelimit.Limiter.
func (l *Limiter) Allow(ctx context.Context, key string, lim ratelimit.Limit) (ratelimit.Decision, error) {
	rctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	res, err := l.rl.Allow(rctx, key, redis_rate.Limit{Rate: lim.Rate, Period: lim.Per, Burst: lim.Burst})
	cancel()
	if err == nil {
		d := ratelimit.Decision{Allowed: res.Allowed > 0, Remaining: res.Remaining, ResetAfter: max(0, res.ResetAfter)}
		if !d.Allowed {
			d.RetryAfter = max(time.Nanosecond, res.RetryAfter)
		}
		return d, nil
	}
	if ctx.Err() != nil {
		return ratelimit.Decision{}, ctx.Err() // the caller left; nothing to decide
	}
	l.fellBack(ctx, err)
	return l.cfg.Fallback.Allow(ctx, key, lim)
}

func (l *Limiter) fellBack(ctx context.Context, err error) {
	if l.cfg.OnFallback != nil {
		l.cfg.OnFallback()
	}
	l.mu.Lock()
	l.fallbacks++
	now := time.Now()
	if now.Sub(l.lastLog) < l.cfg.LogEvery {
		l.mu.Unlock()
		return
	}
	n := l.fallbacks
	l.lastLog, l.fallbacks = now, 0
	l.mu.Unlock()
	l.cfg.Logger.WarnContext(ctx, "rate limits decided by this node alone: Redis failed",
		slog.Int("decisions", n), slog.Any("error", err))
}

// prefixed puts the limiter's keys under the node's prefix: redis_rate
// names them rate:<key>, with no option to change it.
type prefixed struct {
	goredis.UniversalClient
	prefix string
}

func (p prefixed) keys(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = p.prefix + strings.TrimPrefix(k, "rate:")
	}
	return out
}

func (p prefixed) Eval(ctx context.Context, script string, keys []string, args ...any) *goredis.Cmd {
	return p.UniversalClient.Eval(ctx, script, p.keys(keys), args...)
}

func (p prefixed) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *goredis.Cmd {
	return p.UniversalClient.EvalSha(ctx, sha1, p.keys(keys), args...)
}

func (p prefixed) EvalRO(ctx context.Context, script string, keys []string, args ...any) *goredis.Cmd {
	return p.UniversalClient.EvalRO(ctx, script, p.keys(keys), args...)
}

func (p prefixed) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *goredis.Cmd {
	return p.UniversalClient.EvalShaRO(ctx, sha1, p.keys(keys), args...)
}

func (p prefixed) Del(ctx context.Context, keys ...string) *goredis.IntCmd {
	return p.UniversalClient.Del(ctx, p.keys(keys)...)
}
