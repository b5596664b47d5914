package node

import (
	"io"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const zeroRoute = "routes: [{method: POST, path: /x, destination: d}]\n"

// parseZero parses a document that sets path to 0, or 0s where the field
// is a duration (YAML has no unit-less duration).
func parseZero(t *testing.T, path string) error {
	t.Helper()
	_, err := Parse(yamlAt(t, path, 0))
	if err != nil && strings.Contains(err.Error(), "is not a duration") {
		_, err = Parse(yamlAt(t, path, "0s"))
	}
	return err
}

// yamlAt returns a document that sets path (routes[] meaning the one
// route) to value, on top of a valid configuration.
func yamlAt(t *testing.T, path string, value any) []byte {
	t.Helper()
	route := map[string]any{"method": "POST", "path": "/x", "destination": "d"}
	doc := map[string]any{"routes": []any{route}}
	m := doc
	parts := strings.Split(path, ".")
	if parts[0] == "routes[]" {
		m, parts = route, parts[1:]
	}
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = value
	data, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// Every numeric field whose 0 SetDefaults would replace refuses an
// explicit 0, naming the YAML path and the default.
func TestExplicitZeroRefusedInFile(t *testing.T) {
	zeros := defaultedZeros()
	if len(zeros) < 40 {
		t.Fatalf("only %d fields found: %v", len(zeros), zeros)
	}
	for path, def := range zeros {
		err := parseZero(t, path)
		want := strings.ReplaceAll(path, "[]", "[0]") + ": 0 is not a valid value (it would become the default, " + def + ")"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: 0 gave %v, want an error containing %q", path, err, want)
		}
	}
}

// Where 0 means something it is accepted and kept, and documented.
func TestMeaningfulZerosKept(t *testing.T) {
	for _, path := range []string{
		"shutdown.readiness_delay", "shutdown.drain_timeout", "http.max_in_flight",
		"routes[].max_in_flight", "broker.wait_for", "broker.kafka.batch_timeout",
		"broker.rabbitmq.reconnect_attempts", "cluster.redis.db", "cluster.redis.pool_size",
	} {
		if err := parseZero(t, path); err != nil {
			t.Errorf("%s: 0 refused: %v", path, err)
		}
	}
	for args, want := range map[string]time.Duration{
		"":                   DefaultDrainTimeout,
		"--drain-timeout=0":  0,
		"--drain-timeout=2s": 2 * time.Second,
	} {
		cfg, err := Load(strings.Fields(args), func(string) string { return "" }, io.Discard)
		if err != nil || cfg.Shutdown.DrainTimeout != want {
			t.Errorf("%q: drain_timeout %v, %v; want %v", args, cfg.Shutdown.DrainTimeout, err, want)
		}
	}
	cfg, err := Parse([]byte("shutdown: {drain_timeout: 0s}\n" + zeroRoute))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SetDefaults(); cfg.Shutdown.DrainTimeout != 0 {
		t.Errorf("drain_timeout: 0s in the file became %v", cfg.Shutdown.DrainTimeout)
	}
}

// The same for flags and environment variables, and the error names both
// the flag (or variable) and the YAML path.
func TestExplicitZeroRefusedInFlagsAndEnv(t *testing.T) {
	for _, tt := range []struct {
		args []string
		env  map[string]string
		want []string
	}{
		{[]string{"--result-ttl", "0"}, nil, []string{"-result-ttl", "results.ttl: 0 is not a valid value (it would become the default, 10m, 24h in cluster mode)"}},
		{[]string{"--max-body=0"}, nil, []string{"-max-body", "http.max_body: 0 is not a valid value (it would become the default, 1MiB)"}},
		{nil, map[string]string{"SYNCGATE_BODY_TIMEOUT": "0s"}, []string{"SYNCGATE_BODY_TIMEOUT", "http.body_timeout: 0 is not"}},
		{nil, map[string]string{"SYNCGATE_IDEMPOTENCY_TTL": "0s"}, []string{"idempotency.ttl: 0 is not a valid value (it would become the default, results.ttl)"}},
	} {
		_, err := Load(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%v %v: %v, want it to contain %q", tt.args, tt.env, err, w)
			}
		}
	}
	for _, args := range [][]string{{"--max-in-flight", "0"}, {"--wait-for-broker", "0s"}, {"--readiness-delay", "0"}} {
		if _, err := Load(args, func(string) string { return "" }, io.Discard); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}

func TestZeroRouteWaitHint(t *testing.T) {
	_, err := Parse([]byte("routes: [{method: POST, path: /x, destination: d, wait: 0s}]\n"))
	if err == nil || !strings.Contains(err.Error(), "routes[0].wait: 0 is not a valid value") || !strings.Contains(err.Error(), "mode: async") {
		t.Errorf("wait: 0s gave %v", err)
	}
}

// Negative durations are refused naming the YAML path, broker.wait_for
// among them.
func TestNegativeDurationsRefused(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--wait-for-broker", "-1s"}, "broker.wait_for: must not be negative"},
		{[]string{"--drain-timeout", "-1s"}, "shutdown.drain_timeout: must not be negative"},
		{[]string{"--max-poll-wait", "-1s"}, "http.max_poll_wait: must not be negative"},
	} {
		_, err := Load(tt.args, func(string) string { return "" }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want %q", tt.args, err, tt.want)
		}
	}
	cfg, err := Parse([]byte("broker: {wait_for: -5s}\n" + zeroRoute))
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "broker.wait_for: must not be negative") {
		t.Errorf("wait_for: -5s: %v", err)
	}
}
