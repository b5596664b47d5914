package redisstate_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/correlation/redisstate"
	"github.com/syncgate/syncgate/internal/testenv"
)

// newClient returns a client of the shared server and a Config whose Prefix
// is unique to the test; every key under it is deleted when the test ends.
// Without the server the test is skipped, or fails under CI=true
// (testenv.RequireRedis).
func newClient(t *testing.T) (*goredis.Client, redisstate.Config) {
	t.Helper()
	cfg := redisstate.Config{Addr: testenv.RequireRedis(t), Prefix: "syncgate-test:" + randomHex(t) + ":"}
	cfg.SetDefaults()
	rdb := goredis.NewClient(cfg.Options())
	t.Cleanup(func() {
		// t.Context is over by now.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var keys []string
		iter := rdb.Scan(ctx, 0, cfg.Prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("cleanup: scanning %s*: %v", cfg.Prefix, err)
		}
		if len(keys) > 0 {
			if err := rdb.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("cleanup: deleting %d keys: %v", len(keys), err)
			}
		}
		_ = rdb.Close()
	})
	return rdb, cfg
}

// deadClient returns a client of a loopback port nothing listens on.
func deadClient(t *testing.T) (*goredis.Client, redisstate.Config) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := redisstate.Config{Addr: addr, Prefix: "syncgate-test:" + randomHex(t) + ":"}
	cfg.SetDefaults()
	rdb := goredis.NewClient(cfg.Options())
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb, cfg
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// pttl returns the remaining TTL of key; it fails the test when the key
// has none or does not exist.
func pttl(t *testing.T, rdb *goredis.Client, key string) time.Duration {
	t.Helper()
	d, err := rdb.PTTL(t.Context(), key).Result()
	if err != nil {
		t.Fatalf("PTTL %s: %v", key, err)
	}
	if d <= 0 {
		t.Fatalf("PTTL %s = %v: no TTL or no key", key, d)
	}
	return d
}

// wantTTL checks that key expires within want, and not much sooner: the
// slack absorbs a slow machine between setting the TTL and reading it.
func wantTTL(t *testing.T, rdb *goredis.Client, key string, want time.Duration) {
	t.Helper()
	const slack = 5 * time.Second
	if got := pttl(t, rdb, key); got > want || got < want-slack {
		t.Fatalf("PTTL %s = %v, want %v (-%v)", key, got, want, slack)
	}
}
