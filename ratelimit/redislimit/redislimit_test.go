package redislimit_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/correlation/redisstate"
	"github.com/syncgate/syncgate/internal/testenv"
	"github.com/syncgate/syncgate/ratelimit"
	"github.com/syncgate/syncgate/ratelimit/ratelimittest"
	"github.com/syncgate/syncgate/ratelimit/redislimit"
)

func TestMain(m *testing.M) {
	redisstate.SetLibraryLogger(slog.Default())
	m.Run()
}

// newClient returns a client of the shared server and a prefix unique to
// the test, whose keys are deleted when the test ends.
func newClient(t *testing.T) (goredis.UniversalClient, string) {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	cfg := redisstate.Config{Addr: testenv.RequireRedis(t), Prefix: "syncgate-test:" + hex.EncodeToString(b) + ":"}
	rdb := mustClient(t, cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		keys, err := rdb.Keys(ctx, cfg.Prefix+"*").Result()
		if err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if len(keys) > 0 {
			_ = rdb.Del(ctx, keys...).Err()
		}
		_ = rdb.Close()
	})
	return rdb, cfg.Prefix
}

func TestRedis(t *testing.T) {
	rdb, prefix := newClient(t)
	ratelimittest.Run(t, func(t *testing.T) ratelimit.Limiter {
		return redislimit.New(rdb, redislimit.Config{Prefix: prefix, OnFallback: func() { t.Error("decided without Redis") }})
	})
	keys, err := rdb.Keys(t.Context(), "*"+strings.TrimSuffix(prefix, ":")+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix+"ratelimit:") {
			t.Errorf("key %q is not under %sratelimit:", k, prefix)
		}
	}
	if len(keys) == 0 {
		t.Error("no bucket in Redis")
	}
}

// Two limiters on one Redis (two nodes) share every bucket.
func TestRedisBucketsAreShared(t *testing.T) {
	rdb, prefix := newClient(t)
	a := redislimit.New(rdb, redislimit.Config{Prefix: prefix})
	other := mustClient(t, redisstate.Config{Addr: testenv.RedisAddr})
	t.Cleanup(func() { _ = other.Close() })
	b := redislimit.New(other, redislimit.Config{Prefix: prefix})
	lim := ratelimit.Limit{Rate: 1, Per: time.Hour, Burst: 2}
	for i, l := range []*redislimit.Limiter{a, b, a, b} {
		d, err := l.Allow(t.Context(), "alice", lim)
		if err != nil {
			t.Fatal(err)
		}
		if want := i < 2; d.Allowed != want {
			t.Fatalf("request %d: allowed %v, want %v (burst 2 across both)", i+1, d.Allowed, want)
		}
	}
}

// With Redis unreachable, the node decides alone: the limit holds per
// node, nothing fails, and the warning is logged once, not per request.
func TestRedisDownFallsBackToTheNode(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	rdb := mustClient(t, redisstate.Config{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	var logs bytes.Buffer
	var fallbacks atomic.Int32
	l := redislimit.New(rdb, redislimit.Config{Prefix: "x:", Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		OnFallback: func() { fallbacks.Add(1) }})
	lim := ratelimit.Limit{Rate: 1, Per: time.Hour, Burst: 3}
	start := time.Now()
	var allowed int
	for range 10 {
		d, err := l.Allow(t.Context(), "alice", lim)
		if err != nil {
			t.Fatalf("Allow with Redis down: %v", err)
		}
		if d.Allowed {
			allowed++
		} else if d.RetryAfter <= 0 {
			t.Errorf("refused without RetryAfter: %+v", d)
		}
	}
	if allowed != 3 {
		t.Errorf("%d of 10 admitted with Redis down, want the burst, 3 (the node's own limit)", allowed)
	}
	if fallbacks.Load() != 10 {
		t.Errorf("%d fallbacks counted, want 10", fallbacks.Load())
	}
	if n := strings.Count(logs.String(), "decided by this node alone"); n != 1 {
		t.Errorf("%d warnings for 10 decisions, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "component=ratelimit") {
		t.Errorf("warning without component=ratelimit:\n%s", logs.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("10 decisions took %s with Redis down", d)
	}
}

func mustClient(t *testing.T, cfg redisstate.Config) goredis.UniversalClient {
	t.Helper()
	rdb, err := redisstate.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rdb
}
