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
	"github.com/syncgate/syncgate/internal/clienttls"
	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/testenv"
)

// deployment is a Redis set-up cluster mode runs on: the shared single
// server, the test binary's Sentinel set, or its Redis Cluster
// (internal/redistest).
type deployment struct {
	name   string
	config func(t *testing.T) redisstate.Config
}

var deployments = []deployment{
	{redisstate.ModeSingle, func(t *testing.T) redisstate.Config {
		return redisstate.Config{Addr: testenv.RequireRedis(t)}
	}},
	{redisstate.ModeSentinel, func(t *testing.T) redisstate.Config {
		s := redistest.Sentinel(t)
		return redisstate.Config{MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs}
	}},
	{redisstate.ModeCluster, func(t *testing.T) redisstate.Config {
		return redisstate.Config{ClusterAddrs: redistest.Cluster(t).Addrs}
	}},
	// The three again, secured: TLS with a client certificate, an ACL user
	// (the default user off), a password on the sentinels.
	{redisstate.ModeSingle + "+tls+acl", func(t *testing.T) redisstate.Config {
		s := redistest.SecureServer(t)
		return secured(redisstate.Config{Addr: s.Addr}, s.Secure)
	}},
	{redisstate.ModeSentinel + "+tls+acl", func(t *testing.T) redisstate.Config {
		s := redistest.SecureSentinel(t)
		return secured(redisstate.Config{MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs}, s.Secure)
	}},
	{redisstate.ModeCluster + "+tls+acl", func(t *testing.T) redisstate.Config {
		c := redistest.SecureCluster(t)
		return secured(redisstate.Config{ClusterAddrs: c.Addrs}, c.Secure)
	}},
}

// secured adds to cfg what sec asks of a client, the way an operator's
// YAML does (files, user, passwords).
func secured(cfg redisstate.Config, sec *redistest.Secure) redisstate.Config {
	cfg.TLS = clienttls.Config{Enable: true, CAFile: sec.CAFile, CertFile: sec.CertFile, KeyFile: sec.KeyFile}
	cfg.Username, cfg.Password = sec.Username, sec.Password
	if cfg.MasterName != "" {
		cfg.SentinelPassword = sec.SentinelPassword
	}
	return cfg
}

// onEvery runs test as a subtest on every deployment.
func onEvery(t *testing.T, test func(t *testing.T, d deployment)) {
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) { test(t, d) })
	}
}

// newClient returns a client of the shared single server and a Config
// whose Prefix is unique to the test; every key under it is deleted when
// the test ends. Without the server the test is skipped, or fails under
// CI=true (testenv.RequireRedis).
func newClient(t *testing.T) (goredis.UniversalClient, redisstate.Config) {
	t.Helper()
	return newClientOn(t, deployments[0])
}

// newClientOn is newClient on deployment d.
func newClientOn(t *testing.T, d deployment) (goredis.UniversalClient, redisstate.Config) {
	t.Helper()
	cfg := d.config(t)
	cfg.Prefix = "syncgate-test:" + randomHex(t) + ":"
	cfg.SetDefaults()
	rdb, err := redisstate.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// t.Context is over by now.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := deleteKeys(ctx, rdb, cfg.Prefix); err != nil {
			t.Errorf("cleanup: deleting %s*: %v", cfg.Prefix, err)
		}
		_ = rdb.Close()
	})
	return rdb, cfg
}

// deleteKeys deletes every key under prefix, on every master of a cluster,
// one key at a time (a cluster refuses a DEL across slots).
func deleteKeys(ctx context.Context, rdb goredis.UniversalClient, prefix string) error {
	del := func(ctx context.Context, c goredis.UniversalClient) error {
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			if err := c.Del(ctx, iter.Val()).Err(); err != nil {
				return err
			}
		}
		return iter.Err()
	}
	if cc, ok := rdb.(*goredis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error { return del(ctx, c) })
	}
	return del(ctx, rdb)
}

// deadClient returns a client of a loopback port nothing listens on.
func deadClient(t *testing.T) (goredis.UniversalClient, redisstate.Config) {
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
	rdb, err := redisstate.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
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
func pttl(t *testing.T, rdb goredis.UniversalClient, key string) time.Duration {
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
func wantTTL(t *testing.T, rdb goredis.UniversalClient, key string, want time.Duration) {
	t.Helper()
	const slack = 5 * time.Second
	if got := pttl(t, rdb, key); got > want || got < want-slack {
		t.Fatalf("PTTL %s = %v, want %v (-%v)", key, got, want, slack)
	}
}
