package node

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncgate/syncgate/replay"
	"github.com/syncgate/syncgate/tap"
	"github.com/syncgate/syncgate/tap/jsonl"
	"github.com/syncgate/syncgate/tap/pgsink"
	"github.com/syncgate/syncgate/tap/publish"
)

// TapsConfig configures the taps: sinks that a copy of every exchange of
// the routes that name them goes to, off the request path (README,
// "Taps").
type TapsConfig struct {
	Sinks []TapSinkConfig `yaml:"sinks"`
	// Redact are request headers never copied (default Authorization,
	// Cookie, Proxy-Authorization, X-Api-Key).
	Redact []string `yaml:"redact"`
	// MaxBody cuts request and reply bodies (default 64KiB); a route may
	// set its own, or leave bodies out.
	MaxBody ByteSize `yaml:"max_body"`
	// Flush is how long what is queued may take to write at shutdown
	// (default 5s).
	Flush time.Duration `yaml:"flush"`
}

// TapSinkConfig is one sink.
type TapSinkConfig struct {
	Name string `yaml:"name"`
	Kind string `yaml:"kind"` // jsonl, broker (the node's own) or postgres
	// Queue bounds the exchanges waiting for the sink (default 10000);
	// when it is full they are dropped and counted, or, with Block, the
	// request waits up to BlockFor (default 1s) for room.
	Queue    int           `yaml:"queue"`
	Block    bool          `yaml:"block"`
	BlockFor time.Duration `yaml:"block_for"`
	// jsonl: the file, rotated past MaxSizeMB (default 100) and every
	// RotateEvery (0: by size only), keeping MaxBackups files and
	// MaxAgeDays days (0: all), gzipped with Compress.
	Path        string        `yaml:"path"`
	MaxSizeMB   int           `yaml:"max_size_mb"`
	RotateEvery time.Duration `yaml:"rotate_every"`
	MaxBackups  int           `yaml:"max_backups"`
	MaxAgeDays  int           `yaml:"max_age_days"`
	Compress    bool          `yaml:"compress"`
	// broker: each exchange is a JSON message on Destination (a Kafka
	// topic, a RabbitMQ queue), or on RabbitMQ's Exchange with
	// RoutingKey, of the node's broker; the operator creates it.
	Destination string `yaml:"destination"`
	Exchange    string `yaml:"exchange"`
	RoutingKey  string `yaml:"routing_key"`
	// postgres: one row per exchange in Table (default
	// syncgate_exchanges) of the database at URL; the sink creates and
	// migrates the table. pgx reads PGPASSWORD and the other PG*
	// variables, so the password need not be in the file.
	URL   string `yaml:"url"`
	Table string `yaml:"table"`
}

// publishTo is the broker sink's destination (see publishAddress).
func (s TapSinkConfig) publishTo() string {
	return publishAddress(s.Destination, s.Exchange, s.RoutingKey)
}

// RouteTapConfig is a route's tap.
type RouteTapConfig struct {
	Sinks []string `yaml:"sinks"`
	// MaxBody cuts this route's bodies instead of taps.max_body;
	// OmitBodies leaves them out.
	MaxBody    ByteSize `yaml:"max_body"`
	OmitBodies bool     `yaml:"omit_bodies"`
}

func (c *TapsConfig) setDefaults() {
	if c.Redact == nil {
		c.Redact = append([]string(nil), tap.DefaultRedact...)
	}
	if c.MaxBody == 0 {
		c.MaxBody = 64 << 10
	}
	if c.Flush == 0 {
		c.Flush = 5 * time.Second
	}
	for i := range c.Sinks {
		s := &c.Sinks[i]
		if s.Queue == 0 {
			s.Queue = 10_000
		}
		if s.BlockFor == 0 {
			s.BlockFor = time.Second
		}
		if s.Kind == "jsonl" && s.MaxSizeMB == 0 {
			s.MaxSizeMB = 100
		}
	}
}

func (c *Config) checkTaps(bad func(field, format string, args ...any)) {
	t := c.Taps
	if t.MaxBody < 0 {
		bad("taps.max_body", "must not be negative")
	}
	if t.Flush < 0 {
		bad("taps.flush", "must not be negative")
	}
	names := map[string]bool{}
	for i, s := range t.Sinks {
		f := fmt.Sprintf("taps.sinks[%d]", i)
		if s.Name == "" {
			bad(f+".name", "required")
		}
		if names[s.Name] {
			bad(f+".name", "%q is already a sink", s.Name)
		}
		names[s.Name] = true
		switch s.Kind {
		case "jsonl":
			if s.Path == "" {
				bad(f+".path", "required for a jsonl sink")
			}
		case "broker":
			switch {
			case s.Destination == "" && s.Exchange == "":
				bad(f+".destination", "required for a broker sink (or exchange, on RabbitMQ)")
			case s.Exchange != "" && c.Broker.Kind != "rabbitmq":
				bad(f+".exchange", "only on RabbitMQ (broker.kind is %s)", c.Broker.Kind)
			case s.RoutingKey != "" && s.Exchange == "":
				bad(f+".routing_key", "goes with exchange")
			}
		case "postgres":
			if s.URL == "" {
				bad(f+".url", "required for a postgres sink (postgres://user@host:5432/db)")
			}
		default:
			bad(f+".kind", "%q is not a sink kind (jsonl, broker, postgres)", s.Kind)
		}
		if s.Queue < 0 || s.BlockFor < 0 || s.MaxSizeMB < 0 || s.RotateEvery < 0 || s.MaxBackups < 0 || s.MaxAgeDays < 0 {
			bad(f, "queue, block_for, max_size_mb, rotate_every, max_backups and max_age_days must not be negative")
		}
	}
	for i, r := range c.Routes {
		if r.Tap == nil {
			continue
		}
		f := fmt.Sprintf("routes[%d].tap", i)
		if len(r.Tap.Sinks) == 0 {
			bad(f+".sinks", "name at least one of taps.sinks")
		}
		for j, n := range r.Tap.Sinks {
			if !names[n] {
				bad(fmt.Sprintf("%s.sinks[%d]", f, j), "%q is not one of taps.sinks", n)
			}
		}
		if r.Tap.MaxBody < 0 {
			bad(f+".max_body", "must not be negative")
		}
	}
}

// newTap builds the tap of the configured sinks, or nil without any.
func (c *Config) newTap(pub publish.Publisher, reg prometheus.Registerer, log *slog.Logger) (*tap.Tap, error) {
	if len(c.Taps.Sinks) == 0 {
		return nil, nil
	}
	var sinks []tap.SinkConfig
	for _, s := range c.Taps.Sinks {
		var sk tap.Sink
		switch s.Kind {
		case "jsonl":
			j, err := jsonl.New(jsonl.Config{Path: s.Path, MaxSizeMB: s.MaxSizeMB, RotateEvery: s.RotateEvery,
				MaxBackups: s.MaxBackups, MaxAgeDays: s.MaxAgeDays, Compress: s.Compress})
			if err != nil {
				return nil, fmt.Errorf("taps.sinks %s: %w", s.Name, err)
			}
			sk = j
		case "broker":
			p, err := publish.New(publish.Config{Publisher: pub, Destination: s.publishTo(), Timeout: c.Broker.PublishTimeout})
			if err != nil {
				return nil, fmt.Errorf("taps.sinks %s: %w", s.Name, err)
			}
			sk = p
		case "postgres":
			p, err := pgsink.New(pgsink.Config{URL: s.URL, Table: s.Table})
			if err != nil {
				return nil, fmt.Errorf("taps.sinks %s: %w", s.Name, err)
			}
			sk = p
		}
		sinks = append(sinks, tap.SinkConfig{Name: s.Name, Sink: sk, Queue: s.Queue, Block: s.Block, BlockFor: s.BlockFor})
	}
	return tap.New(tap.Config{Sinks: sinks, Registerer: reg, Logger: log})
}

// tapBody is route rc's body cap for its tap (see api.Route.TapMaxBody).
func (c *Config) tapBody(rc RouteConfig) int {
	switch {
	case rc.Tap.OmitBodies:
		return 0
	case rc.Tap.MaxBody > 0:
		return int(rc.Tap.MaxBody)
	}
	return int(c.Taps.MaxBody)
}

// ReplayRoutes returns the routes as `syncgate replay --to-broker` sends
// to them: by name, their destination, forwarded headers, timeout and
// wire profile, as this configuration's gateway would publish them.
func (c *Config) ReplayRoutes() map[string]replay.BrokerRoute {
	m := make(map[string]replay.BrokerRoute, len(c.Routes))
	for _, rc := range c.Routes {
		m[rc.Name] = replay.BrokerRoute{Destination: rc.publishTo(), ForwardHeaders: c.forwardHeaders(rc),
			Timeout: rc.Timeout, Profile: rc.profile(c.Broker)}
	}
	return m
}
