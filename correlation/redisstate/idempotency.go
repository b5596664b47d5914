package redisstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/correlation"
)

// Idempotency binds Idempotency-Keys to the first request that used them,
// with SET NX, so a retry that lands on another node finds the binding. It
// implements gateway.IdempotencyStore. Unlike correlation.MemoryIdempotency
// it has no entry cap (Redis' maxmemory is the cap), so it never returns
// correlation.ErrIdempotencyFull.
type Idempotency struct {
	rdb    goredis.UniversalClient
	prefix string
	ttl    time.Duration
}

// NewIdempotency returns a store on rdb; it uses cfg.Prefix and
// cfg.IdempotencyTTL (defaults applied). The caller owns rdb.
func NewIdempotency(rdb goredis.UniversalClient, cfg Config) *Idempotency {
	cfg.SetDefaults()
	return &Idempotency{rdb: rdb, prefix: cfg.Prefix, ttl: cfg.IdempotencyTTL}
}

// idemValue is the stored form of a correlation.IdempotencyRecord.
type idemValue struct {
	ID          string `json:"id"`
	Fingerprint string `json:"fingerprint"`
}

// key is {prefix}idem:{scope}:{key}. A scope holding ':' could collide
// with another scope's keys; the gateway's scopes are hex digests of the
// route and the principal (gateway.keyScope), which never do.
func (s *Idempotency) key(scope, key string) string {
	return s.prefix + "idem:{" + scope + ":" + key + "}"
}

// Reserve binds key within scope to rec unless it is bound already, in one
// SET NX GET. It returns rec and true when rec was stored, the bound record
// and false otherwise.
func (s *Idempotency) Reserve(ctx context.Context, scope, key string, rec correlation.IdempotencyRecord) (correlation.IdempotencyRecord, bool, error) {
	val, err := json.Marshal(idemValue(rec))
	if err != nil {
		return correlation.IdempotencyRecord{}, false, fmt.Errorf("redis: reserve: %w", err)
	}
	k := s.key(scope, key)
	old, err := s.rdb.SetArgs(ctx, k, val, goredis.SetArgs{Mode: "NX", Get: true, TTL: s.ttl}).Result()
	switch {
	case errors.Is(err, goredis.Nil):
		return rec, true, nil
	case err != nil:
		return correlation.IdempotencyRecord{}, false, unavailable("reserve "+k, err)
	}
	var v idemValue
	if err := json.Unmarshal([]byte(old), &v); err != nil || v.ID == "" {
		return correlation.IdempotencyRecord{}, false, fmt.Errorf("redis: reserve %s: stored record %q is not an idempotency record", k, old)
	}
	return correlation.IdempotencyRecord(v), false, nil
}

// Release unbinds key within scope (its request could not be published,
// so a retry must run it).
func (s *Idempotency) Release(ctx context.Context, scope, key string) error {
	k := s.key(scope, key)
	if err := s.rdb.Del(ctx, k).Err(); err != nil {
		return unavailable("release "+k, err)
	}
	return nil
}
