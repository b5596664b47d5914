package node_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

// clusterConfig is testConfig in cluster mode on the shared Redis, under a
// prefix of its own. The in-process memory broker is not shared between
// processes, so Validate refuses it for a real cluster; a single node on
// it is enough to test the node's own wiring.
func clusterConfig(t *testing.T, redisAddr string) node.Config {
	cfg := testConfig()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	cfg.Cluster.Enabled = true
	cfg.Cluster.Redis.Addr = redisAddr
	cfg.Cluster.Redis.Prefix = "syncgate-test:" + hex.EncodeToString(b) + ":"
	cfg.Cluster.LeaseTTL = time.Second
	cfg.SetDefaults()
	return cfg
}

func startCluster(t *testing.T, cfg node.Config) *running {
	t.Helper()
	t.Cleanup(func() {
		rdb := goredis.NewClient(&goredis.Options{Addr: cfg.Cluster.Redis.Addr})
		defer rdb.Close()
		// t.Context is over by now.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		keys, err := rdb.Keys(ctx, cfg.Cluster.Redis.Prefix+"*").Result()
		if err == nil && len(keys) > 0 {
			err = rdb.Del(ctx, keys...).Err()
		}
		if err != nil {
			t.Errorf("cleanup: deleting %s*: %v", cfg.Cluster.Redis.Prefix, err)
		}
	})
	n, err := node.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return run(t, n)
}

func TestClusterNode(t *testing.T) {
	testenv.RequireRedis(t)
	cfg := clusterConfig(t, testenv.RedisAddr)
	r := startCluster(t, cfg)

	if resp, body := send(t, "GET", r.base+"/readyz", nil, nil); resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Fatalf("readyz: %d %q", resp.StatusCode, body)
	}
	// The result lives in Redis: a poll reads it there.
	resp, _ := send(t, "PUT", r.base+"/t/async/1", []byte("kept in redis"), nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("async: %d", resp.StatusCode)
	}
	if resp, body := pollUntilDone(t, r.base, resp.Header.Get("Location")); resp.StatusCode != 200 || string(body) != "kept in redis" {
		t.Fatalf("poll: %d %q", resp.StatusCode, body)
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: cfg.Cluster.Redis.Addr})
	defer rdb.Close()
	if n, err := rdb.Exists(t.Context(), cfg.Cluster.Redis.Prefix+"result:{"+strings.TrimPrefix(resp.Header.Get("Location"), "/v1/requests/")+"}").Result(); err != nil || n != 1 {
		t.Errorf("result key in Redis: %d, %v", n, err)
	}
	if resp, body := send(t, "POST", r.base+"/demo/echo", []byte("direct"), nil); resp.StatusCode != 200 || string(body) != "direct" {
		t.Fatalf("echo: %d %q", resp.StatusCode, body)
	}
	_, metrics := send(t, "GET", r.base+"/metrics", nil, nil)
	for _, want := range []string{`syncgate_cluster_errors_total{op="claim"} 0`, `syncgate_forwarded_replies_total{outcome="delivered"} 0`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// A second node with the same id is refused while the first lives:
	// its Run ends with the error, never ready (it never touched the broker).
	second, err := node.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	err = second.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "held by another live process") {
		t.Fatalf("second node with id %q: %v", cfg.Node, err)
	}
	select {
	case <-second.Ready():
		t.Error("the second node turned ready")
	default:
	}
	// Stopping gives the id back at once.
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Exists(t.Context(), cfg.Cluster.Redis.Prefix+"{nodes}:lease:"+cfg.Node).Result(); err != nil || n != 0 {
		t.Fatalf("lease after stop: %d, %v; want it released", n, err)
	}
	cfg.Addr = "127.0.0.1:0"
	startCluster(t, cfg)
}

// Cluster mode with Redis down and broker.wait_for set: Run gives up,
// naming Redis's address, and never touches the broker (the node id is
// not taken).
func TestClusterNodeNeedsRedisToStart(t *testing.T) {
	dead := closedAddr(t)
	cfg := clusterConfig(t, dead)
	cfg.Broker.WaitFor = time.Second
	n, err := node.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New with Redis down: %v", err)
	}
	start := time.Now()
	err = n.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "redis "+dead) {
		t.Fatalf("Run with Redis down: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("giving up took %v", d)
	}
}
