package node_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/node"
)

// Configuration errors name the line and the YAML path an operator wrote,
// suggest the nearest known key for a misspelt one, and say what a value
// should look like, never which Go type refused it (issue 15, point 3).
func TestConfigErrorsNameTheYAMLPath(t *testing.T) {
	const route = "routes: [{method: POST, path: /x, destination: d}]\n"
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"misspelt backend key", "broker:\n  kind: kafka\n  kafka:\n    brokers: [127.0.0.1:9092]\n    brokerz: [127.0.0.1:9093]\n",
			[]string{`line 5: broker.kafka.brokerz: unknown field; did you mean "brokers"?`}},
		{"misspelt route key", "routes:\n  - {method: POST, path: /x, destination: d}\n  - method: POST\n    path: /y\n    destination: d\n    timout: 5s\n",
			[]string{`line 6: routes[1].timout: unknown field; did you mean "timeout"?`}},
		{"misspelt limit", "http:\n  max_inflight: 5\n" + route, []string{`line 2: http.max_inflight: unknown field; did you mean "max_in_flight"?`}},
		{"wrong case", "Addr: 127.0.0.1:1\n" + route, []string{`line 1: Addr: unknown field; did you mean "addr"?`}},
		{"nothing close", "http: {zzz_qqq: 1}\n" + route, []string{"line 1: http.zzz_qqq: unknown field"}},
		{"every unknown key at once", "adr: x\nlog: {levle: info}\n" + route,
			[]string{`line 1: adr: unknown field; did you mean "addr"?`, `line 2: log.levle: unknown field; did you mean "level"?`}},
		{"redis section", "cluster:\n  redis: {adr: 127.0.0.1:6379}\n" + route, []string{`line 2: cluster.redis.adr: unknown field; did you mean "addr"?`}},
		{"tls section", "broker:\n  kafka:\n    tls: {ca: x}\n" + route, []string{`line 3: broker.kafka.tls.ca: unknown field`}},
		{"not a duration", "shutdown: {drain_timeout: forever}\n" + route, []string{`line 1: shutdown.drain_timeout: "forever" is not a duration (e.g. 10s, 1m30s)`}},
		{"a duration without unit", "shutdown:\n  drain_timeout: 10\n" + route, []string{`line 2: shutdown.drain_timeout: 10 has no unit: write e.g. 10s or 10ms`}},
		{"route duration", "routes: [{method: POST, path: /x, destination: d, wait: soon}]\n", []string{`line 1: routes[0].wait: "soon" is not a duration`}},
		{"not an integer", "http: {max_in_flight: lots}\n" + route, []string{`line 1: http.max_in_flight: "lots" is not an integer`}},
		{"not a boolean", "demo: {enabled: maybe}\n" + route, []string{`line 1: demo.enabled: "maybe" is not true or false`}},
		{"not a size", "http: {max_body: lots}\n" + route, []string{`line 1: http.max_body: invalid size "lots"`}},
		{"a size as a list", "http: {max_body: [1]}\n" + route, []string{`line 1: http.max_body: a size must be a scalar`}},
		{"section as a scalar", "http: 5\n" + route, []string{"line 1: http: must be a mapping"}},
		{"routes as a mapping", "routes: {method: POST}\n", []string{"line 1: routes: must be a list"}},
		{"list item as a mapping", "forward_headers: [X-Id, {a: b}]\n" + route, []string{`line 1: forward_headers[1]: a mapping is not a string`}},
		{"map value as a list", "cluster: {addrs: {a: [1]}}\n" + route, []string{`line 1: cluster.addrs.a: a list is not a string`}},
		{"document not a mapping", "just words\n", []string{"line 1: the configuration must be a mapping"}},
		{"merged route key", "routes:\n  - &r {method: POST, path: /a, destination: d}\n  - {<<: *r, pth: /b}\n", []string{`line 3: routes[1].pth: unknown field; did you mean "path"?`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(file, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := node.Load([]string{"--config", file}, env(nil), io.Discard)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to contain %q", err, w)
				}
			}
			for _, goName := range []string{"kafka.Config", "node.", "time.Duration", "not found in type", "!!"} {
				if strings.Contains(err.Error(), goName) {
					t.Errorf("err = %v: names Go internals (%q)", err, goName)
				}
			}
		})
	}
}

// Anchors and merge keys are YAML, not errors.
func TestConfigMergeKeys(t *testing.T) {
	c, err := node.Parse([]byte("routes:\n  - &r {method: POST, path: /a, destination: d, timeout: 7s}\n  - {<<: *r, path: /b}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Routes) != 2 || c.Routes[1].Path != "/b" || c.Routes[1].Destination != "d" || c.Routes[1].Timeout.Seconds() != 7 {
		t.Errorf("routes %+v", c.Routes)
	}
}

// http.max_in_flight: 0 means no limit, as --help says, wherever it is set;
// unset, the limit is 10000 (issue 15, point 2).
func TestMaxInFlightZeroIsNoLimit(t *testing.T) {
	const route = "routes: [{method: POST, path: /x, destination: d}]\n"
	tests := []struct {
		name, yaml string
		env        map[string]string
		args       []string
		want       int
	}{
		{"unset", route, nil, nil, node.DefaultMaxInFlight},
		{"unset, http section present", "http: {max_body: 2MiB}\n" + route, nil, nil, node.DefaultMaxInFlight},
		{"empty value", "http:\n  max_in_flight:\n" + route, nil, nil, node.DefaultMaxInFlight},
		{"file 0", "http: {max_in_flight: 0}\n" + route, nil, nil, 0},
		{"env 0", route, map[string]string{"SYNCGATE_MAX_IN_FLIGHT": "0"}, nil, 0},
		{"flag 0", "http: {max_in_flight: 5}\n" + route, nil, []string{"--max-in-flight", "0"}, 0},
		{"file 5", "http: {max_in_flight: 5}\n" + route, nil, nil, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(file, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := node.Load(append([]string{"--config", file}, tt.args...), env(tt.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.HTTP.MaxInFlight != tt.want {
				t.Errorf("http.max_in_flight = %d, want %d", cfg.HTTP.MaxInFlight, tt.want)
			}
		})
	}
	t.Run("embedded configuration", func(t *testing.T) {
		for args, want := range map[string]int{"": node.DefaultMaxInFlight, "--max-in-flight=0": 0} {
			cfg, err := node.Load(strings.Fields(args), env(nil), io.Discard)
			if err != nil || cfg.HTTP.MaxInFlight != want {
				t.Errorf("%q: max_in_flight %d, %v; want %d", args, cfg.HTTP.MaxInFlight, err, want)
			}
		}
	})
}

// A node id that cluster.addrs does not list is an error naming the id and
// the known ones, not a node silently listening on 127.0.0.1:8080; an
// explicit address still wins (issue 15, point 5).
func TestClusterNodeNotInAddrs(t *testing.T) {
	const file = "../../examples/cluster.yaml"
	for _, tt := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"--node", "d"}, nil},
		{nil, map[string]string{"SYNCGATE_NODE": "d"}},
	} {
		_, err := node.Load(append([]string{"--config", file}, tt.args...), env(tt.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), `node: "d" is not in cluster.addrs (known: a, b, c)`) {
			t.Errorf("%v %v: err = %v, want it to name node d and the known ids a, b, c", tt.args, tt.env, err)
		}
	}
	t.Run("no node id", func(t *testing.T) {
		_, err := node.Load([]string{"--config", file}, env(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "is not in cluster.addrs") || !strings.Contains(err.Error(), "--node") {
			t.Errorf("err = %v, want it to ask for --node", err)
		}
	})
	t.Run("listed without an address", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(f, []byte("broker: {kind: rabbitmq}\ncluster: {enabled: true, addrs: {a: \"\", b: 127.0.0.1:1}}\nroutes: [{method: POST, path: /x, destination: d}]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := node.Load([]string{"--config", f, "--node", "a"}, env(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "cluster.addrs.a: empty address") {
			t.Errorf("err = %v", err)
		}
	})
	for _, tt := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"--node", "d", "--addr", "127.0.0.1:9999"}, nil},
		{[]string{"--node", "d"}, map[string]string{"SYNCGATE_ADDR": "127.0.0.1:9999"}},
	} {
		cfg, err := node.Load(append([]string{"--config", file}, tt.args...), env(tt.env), io.Discard)
		if err != nil || cfg.Addr != "127.0.0.1:9999" || cfg.Node != "d" {
			t.Errorf("%v %v: addr %q node %q err %v; want the explicit address", tt.args, tt.env, cfg.Addr, cfg.Node, err)
		}
	}
}

// shutdown.readiness_delay: 0 means no delay (a developer's Ctrl-C), not
// the default; unset is the default.
func TestReadinessDelayZeroIsNone(t *testing.T) {
	for args, want := range map[string]time.Duration{
		"":                     node.DefaultReadinessDelay,
		"--readiness-delay=0s": 0,
		"--readiness-delay=2s": 2 * time.Second,
	} {
		cfg, err := node.Load(strings.Fields(args), env(nil), io.Discard)
		if err != nil || cfg.Shutdown.ReadinessDelay != want {
			t.Errorf("%q: readiness_delay %v, %v; want %v", args, cfg.Shutdown.ReadinessDelay, err, want)
		}
	}
	cfg, err := node.Parse([]byte("shutdown: {readiness_delay: 0s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SetDefaults(); cfg.Shutdown.ReadinessDelay != 0 {
		t.Errorf("readiness_delay: 0s in the file became %v", cfg.Shutdown.ReadinessDelay)
	}
}

// Validate names every negative duration by its path, routes and backends
// included, in a Config loaded or built in code.
func TestNegativeDurations(t *testing.T) {
	cfg := node.Embedded()
	cfg.SetDefaults()
	cfg.Broker.WaitFor = -time.Second
	cfg.Routes[1].Timeout = -time.Second
	cfg.Cluster.Redis.DialTimeout = -time.Second
	err := cfg.Validate()
	for _, w := range []string{"broker.wait_for: must not be negative, got -1s", "routes[1].timeout: must not be negative",
		"cluster.redis.dial_timeout: must not be negative"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate = %v, want %q", err, w)
		}
	}
	for _, args := range [][]string{{"--wait-for-broker=-5s"}, {"--drain-timeout", "-1s"}} {
		if _, err := node.Load(args, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "must not be negative") {
			t.Errorf("%q: err = %v, want a negative duration refused", args, err)
		}
	}
}
