package node_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/correlation/redisstate"
	"github.com/syncgate/syncgate/internal/node"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := node.Load([]string{"--config", "../../examples/syncgate.yaml"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Routes) != 5 || cfg.Routes[2].Mode != "sync" || len(cfg.Routes[3].Parts) != 2 || cfg.Routes[4].MaxBody != 64<<10 {
		t.Errorf("routes %+v", cfg.Routes)
	}
	if cfg.HTTP.MaxBody != 1<<20 || cfg.Results.TTL != 10*time.Minute || cfg.Results.MaxBytes != 256<<20 || !cfg.Demo.Enabled {
		t.Errorf("config %+v", cfg)
	}
	if !strings.HasPrefix(cfg.ReplyTo, "syncgate.reply.") || cfg.Node == "" {
		t.Errorf("node %q reply_to %q", cfg.Node, cfg.ReplyTo)
	}
}

func TestEmbeddedDefault(t *testing.T) {
	cfg, err := node.Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:8080" || cfg.Broker.Kind != "memory" || !cfg.Demo.Enabled || len(cfg.Routes) != 4 {
		t.Errorf("embedded default %+v", cfg)
	}
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(file, []byte(`
addr: 127.0.0.1:1001
log: {level: warn}
shutdown: {drain_timeout: 1s}
routes: [{method: post, path: /x, destination: d}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		env       map[string]string
		args      []string
		wantAddr  string
		wantLevel string
		wantDrain time.Duration
	}{
		{"file only", nil, nil, "127.0.0.1:1001", "warn", time.Second},
		{"env beats file", map[string]string{"SYNCGATE_ADDR": "127.0.0.1:1002", "SYNCGATE_DRAIN_TIMEOUT": "2s"}, nil, "127.0.0.1:1002", "warn", 2 * time.Second},
		{"flag beats env", map[string]string{"SYNCGATE_ADDR": "127.0.0.1:1002"}, []string{"--addr", "127.0.0.1:1003", "--log-level", "debug"}, "127.0.0.1:1003", "debug", time.Second},
		{"flag beats file", nil, []string{"--drain-timeout=3s"}, "127.0.0.1:1001", "warn", 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--config", file}, tt.args...)
			cfg, err := node.Load(args, env(tt.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Addr != tt.wantAddr || cfg.Log.Level != tt.wantLevel || cfg.Shutdown.DrainTimeout != tt.wantDrain {
				t.Errorf("addr %q level %q drain %v; want %q %q %v", cfg.Addr, cfg.Log.Level, cfg.Shutdown.DrainTimeout, tt.wantAddr, tt.wantLevel, tt.wantDrain)
			}
		})
	}
	t.Run("config file from the environment", func(t *testing.T) {
		cfg, err := node.Load(nil, env(map[string]string{"SYNCGATE_CONFIG": file}), io.Discard)
		if err != nil || cfg.Addr != "127.0.0.1:1001" {
			t.Fatalf("%v %q", err, cfg.Addr)
		}
	})
	t.Run("bool flag", func(t *testing.T) {
		cfg, err := node.Load([]string{"--config", file, "--demo"}, env(nil), io.Discard)
		if err != nil || !cfg.Demo.Enabled {
			t.Fatalf("%v demo=%v", err, cfg.Demo.Enabled)
		}
	})
}

// One file serves every node of a cluster: --node picks the listen address
// from cluster.addrs, and an explicit addr still wins.
func TestClusterNodeAddress(t *testing.T) {
	for _, tt := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--node", "a"}, nil, "127.0.0.1:8081"},
		{[]string{"--node", "c"}, nil, "127.0.0.1:8083"},
		{nil, map[string]string{"SYNCGATE_NODE": "b"}, "127.0.0.1:8082"},
		{[]string{"--node", "b", "--addr", "127.0.0.1:9999"}, nil, "127.0.0.1:9999"},
	} {
		cfg, err := node.Load(append([]string{"--config", "../../examples/cluster.yaml"}, tt.args...), env(tt.env), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Addr != tt.want || cfg.ReplyTo != "syncgate.reply."+cfg.Node || !cfg.Cluster.Enabled {
			t.Errorf("%v %v: addr %q reply-to %q cluster %v; want %q", tt.args, tt.env, cfg.Addr, cfg.ReplyTo, cfg.Cluster.Enabled, tt.want)
		}
		if cfg.Results.TTL != 24*time.Hour {
			t.Errorf("results.ttl in cluster mode = %v, want the 24h default", cfg.Results.TTL)
		}
		if cfg.Cluster.Redis.ResultTTL != cfg.Results.TTL || cfg.Cluster.Redis.IdempotencyTTL != cfg.Idempotency.TTL {
			t.Errorf("redis TTLs %v/%v do not follow results.ttl %v / idempotency.ttl %v",
				cfg.Cluster.Redis.ResultTTL, cfg.Cluster.Redis.IdempotencyTTL, cfg.Results.TTL, cfg.Idempotency.TTL)
		}
	}
}

func TestValidationNamesTheField(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"bad mode", "routes: [{method: POST, path: /x, destination: d, mode: later}]", "routes[0].mode"},
		{"no destination", "routes: [{method: POST, path: /x}]", "routes[0].destination"},
		{"bad method", "routes: [{method: FETCH, path: /x, destination: d}]", "routes[0].method"},
		{"relative path", "routes: [{method: POST, path: x, destination: d}]", "routes[0].path"},
		{"timeout over the cap", "routes: [{method: POST, path: /x, destination: d, timeout: 2h}]", "routes[0].timeout"},
		{"duplicate route", "routes: [{method: POST, path: /x, destination: d}, {method: post, path: /x, destination: e}]", "routes[1]"},
		{"no routes", "addr: 127.0.0.1:1", "routes"},
		{"bad level", "log: {level: loud}\nroutes: [{method: POST, path: /x, destination: d}]", "log.level"},
		{"bad broker", "broker: {kind: carrier-pigeon}\nroutes: [{method: POST, path: /x, destination: d}]", "broker.kind"},
		{"unknown field", "adr: 127.0.0.1:1", `line 1: adr: unknown field; did you mean "addr"?`},
		{"bad size", "http: {max_body: lots}", "invalid size"},
		{"bad duration (yaml names the line)", "shutdown: {drain_timeout: forever}", `line 1: shutdown.drain_timeout: "forever" is not a duration`},
		{"negative in-flight", "http: {max_in_flight: -1}\nroutes: [{method: POST, path: /x, destination: d}]", "http.max_in_flight"},
		{"negative route in-flight", "routes: [{method: POST, path: /x, destination: d, max_in_flight: -2}]", "routes[0].max_in_flight"},
		{"negative route max_wait", "routes: [{method: POST, path: /x, destination: d, max_wait: -1s}]", "routes[0].max_wait"},
		{"route max_wait over the cap", "http: {max_wait: 5s}\nroutes: [{method: POST, path: /x, destination: d, max_wait: 6s}]", "routes[0].max_wait"},
		{"key of a missing path parameter", "routes: [{method: POST, path: '/x/{id}', destination: d, key: 'k-${params.ident}'}]", "routes[0].key: ${params.ident}: the path /x/{id} has no parameter {ident}"},
		{"unknown profile", "routes: [{method: POST, path: /x, destination: d, profile: soap}]", "routes[0].profile: unknown wire profile"},
		{"zilla on RabbitMQ", "broker: {kind: rabbitmq, profile: zilla}\nroutes: [{method: POST, path: /x, destination: d}]", "broker.profile: zilla is a Kafka profile"},
		{"exchange off RabbitMQ", "routes: [{method: POST, path: /x, destination: d, exchange: orders}]", "routes[0].exchange: only on RabbitMQ"},
		{"routing key without exchange", "broker: {kind: rabbitmq}\nroutes: [{method: POST, path: /x, destination: d, routing_key: k}]", "routes[0].routing_key"},
		{"constant key", "routes: [{method: POST, path: /x, destination: d, key: all}]", "routes[0].key"},
		{"negative body timeout", "http: {body_timeout: -1s}\nroutes: [{method: POST, path: /x, destination: d}]", "http.body_timeout"},
		{"cluster on the memory broker", "cluster: {enabled: true}\nroutes: [{method: POST, path: /x, destination: d}]", "cluster.enabled"},
		{"cluster redis addr", "broker: {kind: rabbitmq}\ncluster: {enabled: true, redis: {addr: nowhere}}\nroutes: [{method: POST, path: /x, destination: d}]", "cluster.redis.addr"},
		{"cluster lease too short", "broker: {kind: rabbitmq}\ncluster: {enabled: true, lease_ttl: 1ms}\nroutes: [{method: POST, path: /x, destination: d}]", "cluster.lease_ttl"},
		{"key outlives its reply", "idempotency: {ttl: 1h}\nresults: {ttl: 10m}\nroutes: [{method: POST, path: /x, destination: d}]", "idempotency.ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(file, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := node.Load([]string{"--config", file}, env(nil), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to name %q", err, tt.want)
			}
		})
	}
	t.Run("bad env value names the variable", func(t *testing.T) {
		_, err := node.Load(nil, env(map[string]string{"SYNCGATE_DRAIN_TIMEOUT": "soon"}), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "SYNCGATE_DRAIN_TIMEOUT") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("bad flag value names the flag", func(t *testing.T) {
		_, err := node.Load([]string{"--max-body", "huge"}, env(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "max-body") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]node.ByteSize{"1048576": 1 << 20, "1MiB": 1 << 20, "512KiB": 512 << 10, "64KB": 64000, "2 MiB": 2 << 20, "10B": 10} {
		got, err := node.ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1TB", "MiB", "1.5MiB", "99999999999999999999"} {
		if _, err := node.ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", in)
		}
	}
}

func TestEveryExampleConfigValidates(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) < 2 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			// One file serves every node of a cluster: a node id picks its address.
			cfg, err := node.Load([]string{"--config", f, "--node", "a"}, env(nil), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Routes) == 0 {
				t.Error("no routes")
			}
		})
	}
	t.Run("kafka brokers from the environment", func(t *testing.T) {
		cfg, err := node.Load([]string{"--config", "../../examples/kafka.yaml"},
			env(map[string]string{"SYNCGATE_KAFKA_BROKERS": "127.0.0.1:1, 127.0.0.1:2"}), io.Discard)
		if err != nil || len(cfg.Broker.Kafka.Brokers) != 2 || cfg.Broker.Kafka.Brokers[1] != "127.0.0.1:2" {
			t.Fatalf("%v %v", err, cfg.Broker.Kafka.Brokers)
		}
	})
	t.Run("backend validation names the field", func(t *testing.T) {
		_, err := node.Load([]string{"--config", "../../examples/kafka.yaml", "--kafka-brokers", ""}, env(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "broker.kafka.brokers") {
			t.Fatalf("err = %v, want it to name broker.kafka.brokers", err)
		}
	})
}

// A flag or variable naming one Redis deployment replaces the file's: the
// cluster example names a single server, and --redis-cluster-addrs (or the
// Sentinel variables) pick the other deployments without a conflict. Two
// deployments named at once are refused.
func TestRedisDeploymentOverride(t *testing.T) {
	const file = "../../examples/cluster.yaml"
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		mode    string
		wantErr string
	}{
		{name: "file", mode: redisstate.ModeSingle},
		{name: "cluster flag", args: []string{"--redis-cluster-addrs", "127.0.0.1:7000,127.0.0.1:7001"}, mode: redisstate.ModeCluster},
		{name: "sentinel variables", env: map[string]string{"SYNCGATE_REDIS_MASTER_NAME": "m", "SYNCGATE_REDIS_SENTINEL_ADDRS": "127.0.0.1:26379"}, mode: redisstate.ModeSentinel},
		{name: "two deployments", args: []string{"--redis-addr", "127.0.0.1:6379", "--redis-cluster-addrs", "127.0.0.1:7000"}, wantErr: "set one of addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := node.Load(append([]string{"--config", file, "--node", "a"}, tt.args...), env(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load = %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Cluster.Redis.Mode(); got != tt.mode {
				t.Fatalf("mode %s, want %s: %+v", got, tt.mode, cfg.Cluster.Redis)
			}
		})
	}
}
