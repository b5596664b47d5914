package ratelimit

import (
	"context"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxKeys is MemoryConfig.MaxKeys when unset.
const DefaultMaxKeys = 100_000

// MemoryConfig bounds a Memory limiter.
type MemoryConfig struct {
	// MaxKeys caps the buckets held (default DefaultMaxKeys). Buckets that
	// refilled completely are dropped first, which changes nothing (a full
	// bucket is a new one); above MaxKeys with none of those, arbitrary
	// buckets are dropped, and their callers start again with a full
	// burst.
	MaxKeys int
}

// Memory is a Limiter in the process: one token bucket per key. Its state
// is bounded (see MemoryConfig.MaxKeys) and needs no goroutine: idle keys
// are swept when the map has doubled since the last sweep.
type Memory struct {
	maxKeys int

	mu        sync.Mutex
	buckets   map[string]*bucket
	nextSweep int
}

type bucket struct {
	lim   *rate.Limiter
	limit Limit
}

const minSweep = 1024

// NewMemory returns an empty in-memory limiter.
func NewMemory(cfg MemoryConfig) *Memory {
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	return &Memory{maxKeys: cfg.MaxKeys, buckets: make(map[string]*bucket), nextSweep: min(minSweep, cfg.MaxKeys)}
}

// Allow implements Limiter; it never fails.
func (m *Memory) Allow(_ context.Context, key string, l Limit) (Decision, error) {
	now := time.Now()
	per := rate.Every(l.interval())
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.buckets[key]
	if b == nil || b.limit != l {
		if b == nil && len(m.buckets) >= m.nextSweep {
			m.sweep(now)
		}
		b = &bucket{lim: rate.NewLimiter(per, l.Burst), limit: l}
		m.buckets[key] = b
	}
	allowed := b.lim.AllowN(now, 1)
	tokens := b.lim.TokensAt(now)
	d := Decision{
		Allowed:    allowed,
		Remaining:  max(0, int(math.Floor(tokens))),
		ResetAfter: tokenTime(float64(l.Burst)-tokens, l),
	}
	if !allowed {
		d.RetryAfter = max(time.Nanosecond, tokenTime(1-tokens, l))
	}
	return d, nil
}

// tokenTime is how long n tokens take to come back under l.
func tokenTime(n float64, l Limit) time.Duration {
	if n <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(n * float64(l.interval())))
}

// sweep drops the buckets that are full again, then, at maxKeys, arbitrary
// ones down to three quarters of it, so that the next sweep is a quarter
// of maxKeys new keys away: amortised O(1) per new key even when every
// key is busy (many callers at once). Called with mu held.
func (m *Memory) sweep(now time.Time) {
	for k, b := range m.buckets {
		if b.lim.TokensAt(now) >= float64(b.limit.Burst) {
			delete(m.buckets, k)
		}
	}
	if len(m.buckets) >= m.maxKeys {
		keep := min(m.maxKeys-m.maxKeys/4, m.maxKeys-1)
		for k := range m.buckets {
			if len(m.buckets) <= keep {
				break
			}
			delete(m.buckets, k)
		}
	}
	m.nextSweep = min(max(2*len(m.buckets), minSweep), m.maxKeys)
}

// Len returns the number of keys held.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.buckets)
}
