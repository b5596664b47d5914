package node_test

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/node"
)

func TestLimitDefaults(t *testing.T) {
	cfg, err := node.Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.HTTP
	if h.MaxBody != 1<<20 || h.MaxHeaderBytes != 64<<10 || h.ReadHeaderTimeout != 10*time.Second ||
		h.IdleTimeout != 120*time.Second || h.MaxTimeout != 60*time.Second || h.BodyTimeout != 30*time.Second ||
		h.MaxInFlight != 10_000 || h.MaxWait != 60*time.Second || h.MaxPollWait != 30*time.Second {
		t.Errorf("http defaults %+v", h)
	}
	if cfg.Idempotency.TTL != cfg.Results.TTL || cfg.Idempotency.MaxEntries != 100_000 {
		t.Errorf("idempotency defaults %+v", cfg.Idempotency)
	}
	for _, r := range cfg.Routes {
		if r.MaxWait != h.MaxWait || r.MaxInFlight != 0 || r.MaxBody != h.MaxBody {
			t.Errorf("route %s defaults %+v", r.Name, r)
		}
	}
}

// Every limit is settable in the file, the environment and by flag, and
// flags win over the environment, which wins over the file.
func TestLimitPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte(`
http: {max_in_flight: 10, max_header_bytes: 8KiB, read_header_timeout: 1s, idle_timeout: 2s,
       body_timeout: 3s, max_wait: 4s, max_poll_wait: 5s, max_timeout: 50s}
idempotency: {ttl: 1m}
routes: [{method: post, path: /x, destination: d, max_in_flight: 3, max_wait: 2s, require_idempotency_key: true}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want node.HTTPConfig
		ttl  time.Duration
	}{
		{"file", nil, nil, node.HTTPConfig{MaxInFlight: 10, MaxHeaderBytes: 8 << 10, ReadHeaderTimeout: time.Second,
			IdleTimeout: 2 * time.Second, BodyTimeout: 3 * time.Second, MaxWait: 4 * time.Second, MaxPollWait: 5 * time.Second,
			MaxTimeout: 50 * time.Second}, time.Minute},
		{"env", map[string]string{"SYNCGATE_MAX_IN_FLIGHT": "20", "SYNCGATE_MAX_HEADER_BYTES": "16KiB",
			"SYNCGATE_READ_HEADER_TIMEOUT": "11s", "SYNCGATE_IDLE_TIMEOUT": "12s", "SYNCGATE_BODY_TIMEOUT": "13s",
			"SYNCGATE_MAX_WAIT": "14s", "SYNCGATE_MAX_POLL_WAIT": "15s", "SYNCGATE_MAX_TIMEOUT": "55s", "SYNCGATE_IDEMPOTENCY_TTL": "2m"},
			nil, node.HTTPConfig{MaxInFlight: 20, MaxHeaderBytes: 16 << 10, ReadHeaderTimeout: 11 * time.Second,
				IdleTimeout: 12 * time.Second, BodyTimeout: 13 * time.Second, MaxWait: 14 * time.Second, MaxPollWait: 15 * time.Second,
				MaxTimeout: 55 * time.Second}, 2 * time.Minute},
		{"flag", map[string]string{"SYNCGATE_MAX_IN_FLIGHT": "20", "SYNCGATE_IDEMPOTENCY_TTL": "2m"},
			[]string{"--max-in-flight=30", "--max-header-bytes=32KiB", "--read-header-timeout=21s", "--idle-timeout=22s",
				"--body-timeout=23s", "--max-wait=24s", "--max-poll-wait=25s", "--max-timeout=59s", "--idempotency-ttl=3m"},
			node.HTTPConfig{MaxInFlight: 30, MaxHeaderBytes: 32 << 10, ReadHeaderTimeout: 21 * time.Second,
				IdleTimeout: 22 * time.Second, BodyTimeout: 23 * time.Second, MaxWait: 24 * time.Second, MaxPollWait: 25 * time.Second,
				MaxTimeout: 59 * time.Second}, 3 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := node.Load(append([]string{"--config", file}, tt.args...), env(tt.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.MaxBody = 1 << 20
			tt.want.StreamHeartbeat, tt.want.StreamWriteTimeout = 15*time.Second, 10*time.Second
			if cfg.HTTP != tt.want || cfg.Idempotency.TTL != tt.ttl {
				t.Errorf("http %+v ttl %v\nwant %+v ttl %v", cfg.HTTP, cfg.Idempotency.TTL, tt.want, tt.ttl)
			}
			r := cfg.Routes[0]
			if r.MaxInFlight != 3 || r.MaxWait != 2*time.Second || !r.RequireIdempotencyKey {
				t.Errorf("route %+v", r)
			}
		})
	}
}
