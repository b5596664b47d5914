package correlation

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrIdempotencyFull is returned by Reserve when the store holds MaxEntries
// live keys: forgetting a live key could run a payment twice, so the request
// is refused instead (the gateway answers 503 store-full with Retry-After).
var ErrIdempotencyFull = errors.New("correlation: idempotency store full")

// IdempotencyRecord binds an Idempotency-Key to the request it first came
// with: the correlation id of that request and a fingerprint of its payload.
type IdempotencyRecord struct {
	ID          string
	Fingerprint string
}

// MemoryIdempotencyConfig bounds a MemoryIdempotency.
type MemoryIdempotencyConfig struct {
	// TTL is how long a key stays bound (default 24 h).
	TTL time.Duration
	// MaxEntries caps the live keys (default 100 000).
	MaxEntries int
}

// MemoryIdempotency is an in-process idempotency key store: SET NX with a
// TTL, as the Redis store does it. Every key lives for the same TTL, so
// insertion order is expiry order and expired keys are dropped from the
// front of a queue; it needs no goroutine.
type MemoryIdempotency struct {
	cfg   MemoryIdempotencyConfig
	mu    sync.Mutex
	items map[string]idemEntry
	queue []idemKey // insertion order == expiry order
}

type idemEntry struct {
	IdempotencyRecord
	expires time.Time
}

type idemKey struct {
	key     string
	expires time.Time
}

// NewMemoryIdempotency returns an empty store.
func NewMemoryIdempotency(cfg MemoryIdempotencyConfig) *MemoryIdempotency {
	if cfg.TTL <= 0 {
		cfg.TTL = 24 * time.Hour
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 100_000
	}
	return &MemoryIdempotency{cfg: cfg, items: make(map[string]idemEntry)}
}

// Reserve binds key within scope to rec unless it is bound already. It
// returns the bound record and true when rec was stored, the existing record
// and false otherwise.
func (s *MemoryIdempotency) Reserve(_ context.Context, scope, key string, rec IdempotencyRecord) (IdempotencyRecord, bool, error) {
	k := scope + "\x00" + key
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropExpired(now)
	if e, ok := s.items[k]; ok {
		return e.IdempotencyRecord, false, nil
	}
	if len(s.items) >= s.cfg.MaxEntries {
		return IdempotencyRecord{}, false, ErrIdempotencyFull
	}
	exp := now.Add(s.cfg.TTL)
	s.items[k] = idemEntry{rec, exp}
	s.queue = append(s.queue, idemKey{k, exp})
	return rec, true, nil
}

// Release unbinds key within scope (the request it was bound to could not
// be published, so a retry must run it).
func (s *MemoryIdempotency) Release(_ context.Context, scope, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.items, scope+"\x00"+key) // its queue entry expires harmlessly
	return nil
}

// Len returns the number of live keys.
func (s *MemoryIdempotency) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropExpired(time.Now())
	return len(s.items)
}

func (s *MemoryIdempotency) dropExpired(now time.Time) {
	i := 0
	for ; i < len(s.queue) && !now.Before(s.queue[i].expires); i++ {
		q := s.queue[i]
		// A key released and reserved again has a later expiry: keep it.
		if e, ok := s.items[q.key]; ok && e.expires.Equal(q.expires) {
			delete(s.items, q.key)
		}
	}
	if i > 0 {
		s.queue = s.queue[i:] // append reallocates now and then, freeing the front
	}
	// Released keys leave stale queue entries; compact when they dominate.
	if len(s.queue) > 2*len(s.items)+1024 {
		live := s.queue[:0]
		for _, q := range s.queue {
			if e, ok := s.items[q.key]; ok && e.expires.Equal(q.expires) {
				live = append(live, q)
			}
		}
		s.queue = live
	}
}
