package clustertest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/testenv"
)

// redisServer is a private redis-server child process on a loopback port,
// so that a test may stop and restart it without touching the shared
// Redis other packages test against. No persistence: a restart empties it,
// as a crashed cache would come back.
type redisServer struct {
	t    *testing.T
	bin  string
	port int
	dir  string
	proc *process
}

// startRedis starts a private redis-server, stopped when the test ends.
// Without the binary the test is skipped, or fails under CI=true.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		testenv.Unavailable(t, "these tests need the redis-server binary on PATH: %v", err)
	}
	r := &redisServer{t: t, bin: bin, port: testenv.FreePort(t), dir: t.TempDir()}
	r.Start()
	return r
}

// Addr is the server's host:port.
func (r *redisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// Start runs the server (again, on the same port) and returns once it
// answers PING.
func (r *redisServer) Start() {
	t := r.t
	t.Helper()
	r.proc = startProcess(t, fmt.Sprintf("redis-%d", r.port), filepath.Join(r.dir, "redis.log"), r.bin,
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--daemonize", "no", "--logfile", filepath.Join(r.dir, "redis.log"))
	rdb := goredis.NewClient(&goredis.Options{Addr: r.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	testenv.Eventually(t, 10*time.Second, "redis-server answers PING", func() bool {
		if r.proc.Exited() {
			t.Fatalf("redis-server exited: %v\n%s", r.proc.Err(), r.proc.Tail(20))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return rdb.Ping(ctx).Err() == nil
	})
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (r *redisServer) Kill() {
	r.t.Helper()
	r.proc.Kill()
}

// Do runs one command on the server.
func (r *redisServer) Do(args ...any) error {
	rdb := goredis.NewClient(&goredis.Options{Addr: r.Addr()})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return rdb.Do(ctx, args...).Err()
}

// Exists reports how many of keys exist on the server.
func (r *redisServer) Exists(keys ...string) (int64, error) {
	rdb := goredis.NewClient(&goredis.Options{Addr: r.Addr()})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return rdb.Exists(ctx, keys...).Result()
}

// redisKind is the Redis deployment a cluster's nodes share.
type redisKind string

const (
	redisPrivate  redisKind = "single"   // a private redis-server per test (startRedis)
	redisSentinel redisKind = "sentinel" // the test binary's Sentinel set
	redisCluster  redisKind = "cluster"  // the test binary's Redis Cluster
	// The two again, secured: TLS with a client certificate, an ACL user,
	// a password on the sentinels.
	redisSecureSentinel redisKind = "sentinel+tls+acl"
	redisSecureCluster  redisKind = "cluster+tls+acl"
)

// secureYAML is the lines of cluster.redis that sec asks for.
func secureYAML(sec *redistest.Secure, sentinel bool) string {
	y := fmt.Sprintf("    username: %s\n    password: %s\n    tls:\n      enable: true\n      ca_file: %s\n      cert_file: %s\n      key_file: %s\n",
		sec.Username, sec.Password, sec.CAFile, sec.CertFile, sec.KeyFile)
	if sentinel {
		y += fmt.Sprintf("    sentinel_password: %s\n", sec.SentinelPassword)
	}
	return y
}

// redisYAML is the lines of cluster.redis for c's deployment. On the
// shared deployments the prefix is the test's own.
func (c *cluster) redisYAML() string {
	switch c.rk {
	case redisSentinel:
		s := redistest.Sentinel(c.t)
		return fmt.Sprintf("    master_name: %s\n    sentinel_addrs: [%s]\n    prefix: \"clustertest-%s:\"\n",
			s.MasterName, strings.Join(s.SentinelAddrs, ", "), c.suffix)
	case redisCluster:
		return fmt.Sprintf("    cluster_addrs: [%s]\n    prefix: \"clustertest-%s:\"\n",
			strings.Join(redistest.Cluster(c.t).Addrs, ", "), c.suffix)
	case redisSecureSentinel:
		s := redistest.SecureSentinel(c.t)
		return fmt.Sprintf("    master_name: %s\n    sentinel_addrs: [%s]\n    prefix: \"clustertest-%s:\"\n",
			s.MasterName, strings.Join(s.SentinelAddrs, ", "), c.suffix) + secureYAML(s.Secure, true)
	case redisSecureCluster:
		rc := redistest.SecureCluster(c.t)
		return fmt.Sprintf("    cluster_addrs: [%s]\n    prefix: \"clustertest-%s:\"\n",
			strings.Join(rc.Addrs, ", "), c.suffix) + secureYAML(rc.Secure, false)
	}
	return fmt.Sprintf("    addr: %s\n    prefix: \"clustertest:\"\n", c.redis.Addr())
}
