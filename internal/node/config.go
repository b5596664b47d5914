package node

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/brokers/kafka"
	natsb "github.com/syncgate/syncgate/brokers/nats"
	"github.com/syncgate/syncgate/brokers/rabbitmq"
	"github.com/syncgate/syncgate/brokers/responder/demo"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/correlation/redisstate"
	"github.com/syncgate/syncgate/gateway"
	"github.com/syncgate/syncgate/push/webhook"
)

// Config is everything a node is configured with.
type Config struct {
	// Addr is the HTTP listen address.
	Addr string `yaml:"addr"`
	// AdminAddr, when set, is the listen address of the admin surface:
	// /metrics and the verbose /readyz move there from Addr, whose /readyz
	// then names failing checks only, ?verbose or not; /healthz and /readyz
	// stay on Addr for load balancers. Empty: everything on Addr, where
	// /readyz?verbose needs a credential when auth is configured.
	AdminAddr string `yaml:"admin_addr"`
	// Node identifies this gateway node (default: hostname plus a random
	// suffix). Its reply address is derived from it.
	Node string `yaml:"node"`
	// ReplyTo is this node's reply address (default "syncgate.reply.<node>").
	ReplyTo string `yaml:"reply_to"`

	Log      LogConfig      `yaml:"log"`
	Broker   BrokerConfig   `yaml:"broker"`
	Demo     DemoConfig     `yaml:"demo"`
	HTTP     HTTPConfig     `yaml:"http"`
	Results  ResultsConfig  `yaml:"results"`
	Shutdown ShutdownConfig `yaml:"shutdown"`

	Idempotency IdempotencyConfig `yaml:"idempotency"`
	Cluster     ClusterConfig     `yaml:"cluster"`
	// Auth authenticates callers (auth_config.go); empty: nobody is asked
	// for a credential.
	Auth AuthConfig `yaml:"auth"`
	// TLS serves the API listener over HTTPS, optionally with client
	// certificates (tls_config.go).
	TLS TLSConfig `yaml:"tls"`

	// ForwardHeaders lists request headers forwarded to services on every
	// route (a route may add its own).
	ForwardHeaders []string `yaml:"forward_headers"`
	// Taps copies the exchanges of the routes that name a sink (README,
	// "Taps").
	Taps TapsConfig `yaml:"taps"`
	// Outbox queues what the broker does not take, for the routes with
	// outbox: true (README, "Outbox").
	Outbox OutboxConfig  `yaml:"outbox"`
	Routes []RouteConfig `yaml:"routes"`
}

// LogConfig selects the log format and level.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error (default info)
	Format string `yaml:"format"` // text or json (default text)
}

// BrokerConfig selects and configures the broker backend.
type BrokerConfig struct {
	// Kind is the backend: memory (default), kafka, rabbitmq or nats. Only the
	// chosen backend's section is read.
	Kind     string          `yaml:"kind"`
	Memory   MemoryConfig    `yaml:"memory"`
	Kafka    kafka.Config    `yaml:"kafka"`
	RabbitMQ rabbitmq.Config `yaml:"rabbitmq"`
	NATS     natsb.Config    `yaml:"nats"`
	// WaitFor bounds how long a starting node waits for its broker (and,
	// in cluster mode, Redis) before it exits with an error naming the
	// address; 0 (the default) waits for ever, not ready meanwhile.
	WaitFor time.Duration `yaml:"wait_for"`
	// PublishTimeout caps one publish (default 5s).
	PublishTimeout time.Duration `yaml:"publish_timeout"`
	// Profile is the routes' wire profile unless a route names its own:
	// syncgate (default), spring, zilla or cloudevents (envelope.Profile).
	// Replies are recognised in every profile.
	Profile string `yaml:"profile"`
	// ReplyConcurrency is how many replies the node handles at once (default 16).
	ReplyConcurrency int `yaml:"reply_concurrency"`
}

// MemoryConfig configures the in-process broker.
type MemoryConfig struct {
	QueueSize int `yaml:"queue_size"` // per destination (default 10000)
}

// DemoConfig runs the demo service in the gateway's process.
type DemoConfig struct {
	Enabled     bool `yaml:"enabled"`
	Concurrency int  `yaml:"concurrency"` // handlers at once per demo route (default 1024)
}

// HTTPConfig configures the HTTP server and request limits.
type HTTPConfig struct {
	MaxBody           ByteSize      `yaml:"max_body"`            // default 1MiB
	MaxHeaderBytes    ByteSize      `yaml:"max_header_bytes"`    // default 64KiB
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"` // default 10s
	IdleTimeout       time.Duration `yaml:"idle_timeout"`        // default 120s
	MaxTimeout        time.Duration `yaml:"max_timeout"`         // cap on route timeouts (default 60s)
	// BodyTimeout caps reading one request body (408 above it; default 30s).
	BodyTimeout time.Duration `yaml:"body_timeout"`
	// MaxInFlight caps the requests served at once on routes and polls
	// (503 with Retry-After above it; 0: no limit). It defaults to
	// DefaultMaxInFlight in the configuration Load builds (Parse and
	// Embedded start from it), not in SetDefaults: an explicit 0 must stay 0.
	MaxInFlight int `yaml:"max_in_flight"`
	// MaxWait caps Prefer: wait on every route (default 60s); a route may
	// lower it.
	MaxWait time.Duration `yaml:"max_wait"`
	// MaxPollWait caps ?wait= of a long poll (default 30s).
	MaxPollWait time.Duration `yaml:"max_poll_wait"`
	// StreamHeartbeat is how often an idle event stream gets a comment
	// line (default 15s); StreamWriteTimeout cuts off a client that does
	// not read its stream (default 10s).
	StreamHeartbeat    time.Duration `yaml:"stream_heartbeat"`
	StreamWriteTimeout time.Duration `yaml:"stream_write_timeout"`
}

// ClusterConfig runs the node as one of several behind a load balancer,
// sharing a broker and a Redis: results and Idempotency-Keys live in Redis
// (so any node serves a poll or a retry), and a reply consumed by a node
// that does not hold its request is forwarded to the one that does.
type ClusterConfig struct {
	Enabled bool `yaml:"enabled"`
	// Redis is the shared server. Its result_ttl and idempotency_ttl are
	// ignored: results.ttl and idempotency.ttl govern in cluster mode too.
	Redis redisstate.Config `yaml:"redis"`
	// LeaseTTL is how long a node's id stays taken after its process
	// stopped refreshing it (default 10s); a node restarted with the same
	// id waits up to this long for it.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// ClaimMargin is added to a request's timeout for how long its owner
	// record lives in Redis (default 5s).
	ClaimMargin time.Duration `yaml:"claim_margin"`
	// Addrs maps node ids to listen addresses, so that one file serves
	// every node of a cluster on one machine (--node a, --node b, ...);
	// addr, when set, wins.
	Addrs map[string]string `yaml:"addrs"`
}

// IdempotencyConfig bounds the Idempotency-Key store.
type IdempotencyConfig struct {
	// TTL is how long a key is bound and its reply replayed (default:
	// results.ttl, which bounds it: the reply must outlive the key).
	TTL        time.Duration `yaml:"ttl"`
	MaxEntries int           `yaml:"max_entries"` // default 100000
}

// ResultsConfig bounds the result store of polled requests. MaxEntries and
// MaxBytes bound the in-memory store; in cluster mode Redis holds the
// results and its own maxmemory bounds them.
type ResultsConfig struct {
	TTL        time.Duration `yaml:"ttl"`         // how long a reply stays pollable (default 10m; 24h in cluster mode)
	MaxEntries int           `yaml:"max_entries"` // default 100000
	// MaxBytes caps the stored results' bodies, headers and a fixed
	// overhead per record (default 256MiB: see correlation.DefaultMaxBytes).
	// Above either cap, requests that may need a record answer 503
	// store-full; stored and pending results are never evicted.
	MaxBytes   ByteSize      `yaml:"max_bytes"`
	RetryAfter time.Duration `yaml:"retry_after"` // poll interval suggested with 202, Retry-After of 503 store-full (default 1s)
}

// ShutdownConfig bounds graceful shutdown.
type ShutdownConfig struct {
	// ReadinessDelay is how long the node goes on serving, with /readyz
	// answering 503, between a stop signal and closing its listener, so
	// that load balancers and probes see "not ready" and stop sending
	// before connections are refused (default 5s; 0: none).
	ReadinessDelay time.Duration `yaml:"readiness_delay"`
	// DrainTimeout is how long in-flight requests may go on once the
	// listener is closed; then each is answered (202 where the result store
	// outlives the node, else 503) and the node exits (default 10s; 0:
	// answered at once). Like ReadinessDelay, its default is set by the
	// configuration Load builds (see base), not by SetDefaults.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
}

// RouteConfig is one HTTP route.
type RouteConfig struct {
	Name        string        `yaml:"name"`
	Method      string        `yaml:"method"`
	Path        string        `yaml:"path"`
	Destination string        `yaml:"destination"`
	Mode        string        `yaml:"mode"`    // sync, async or auto (default auto)
	Wait        time.Duration `yaml:"wait"`    // auto: hold before 202 (default 5s)
	Timeout     time.Duration `yaml:"timeout"` // total budget (default 30s)
	MaxBody     ByteSize      `yaml:"max_body"`
	// MaxInFlight caps this route's requests at once (0: only http.max_in_flight).
	MaxInFlight int `yaml:"max_in_flight"`
	// MaxWait caps Prefer: wait on this route (default http.max_wait).
	MaxWait time.Duration `yaml:"max_wait"`
	// RequireIdempotencyKey answers 400 to requests without Idempotency-Key.
	RequireIdempotencyKey bool `yaml:"require_idempotency_key"`
	// ForwardHeaders adds to the global list for this route.
	ForwardHeaders []string `yaml:"forward_headers"`
	// Auth is required, optional or none; default required when the auth
	// section is configured. Without it only none is accepted.
	Auth string `yaml:"auth"`
	// RateLimit is the route's own limit per caller, or off: see
	// auth.rate_limit.
	RateLimit RouteRateLimitConfig `yaml:"rate_limit"`
	// Key builds each request's message key (api.KeyTemplate: path
	// parameters, headers, the JSON body), so that one entity's messages
	// share a Kafka partition and keep their order. Empty: the
	// correlation id.
	Key string `yaml:"key"`
	// Exchange (RabbitMQ) publishes the route's requests to this exchange,
	// which the operator declares and binds, with RoutingKey (default:
	// Destination) as the routing key, instead of to the queue Destination
	// through broker.rabbitmq.exchange.
	Exchange   string `yaml:"exchange"`
	RoutingKey string `yaml:"routing_key"`
	// Profile is the route's wire profile (default broker.profile).
	Profile string `yaml:"profile"`
	// Callback lets callers of this route name a Callback-Url: the reply
	// of a request answered 202 is POSTed there, signed (README, "Push:
	// SSE and webhooks"). Absent: the header is refused.
	Callback *CallbackConfig `yaml:"callback"`
	// Tap copies this route's exchanges to the sinks named (taps.sinks).
	Tap *RouteTapConfig `yaml:"tap"`
	// Outbox queues a request the broker does not take (unavailable, or
	// the publish timed out) in the outbox section's store and answers
	// 202, instead of 503 (async and auto routes).
	Outbox bool `yaml:"outbox"`
	// Parts make the route scatter-gather (README "Scatter-gather"):
	// each request goes to every part's destination, and the answer is
	// one document of the parts' replies. Destinations is the shorthand
	// for parts named after their destinations. Gather is all (default),
	// any or quorum, which needs Quorum 2xx parts.
	Parts        []PartConfig `yaml:"parts"`
	Destinations []string     `yaml:"destinations"`
	Gather       string       `yaml:"gather"`
	Quorum       int          `yaml:"quorum"`
}

// PartConfig is one part of a scatter-gather route.
type PartConfig struct {
	Name        string `yaml:"name"`
	Destination string `yaml:"destination"`
	// Timeout is the part's own budget, shorter than the route's (0: the
	// route's timeout).
	Timeout time.Duration `yaml:"timeout"`
}

// parts is the route's scatter-gather parts: Parts, or one per entry of
// Destinations; nil for a plain route.
func (rc RouteConfig) parts() []gateway.Part {
	var out []gateway.Part
	for _, p := range rc.Parts {
		out = append(out, gateway.Part{Name: p.Name, Destination: p.Destination, Timeout: p.Timeout})
	}
	for _, d := range rc.Destinations {
		out = append(out, gateway.Part{Name: d, Destination: d})
	}
	return out
}

// gathers reports whether a route scatters.
func (c *Config) gathers() bool {
	for _, rc := range c.Routes {
		if len(rc.Parts) > 0 || len(rc.Destinations) > 0 {
			return true
		}
	}
	return false
}

// CallbackConfig is a route's webhook settings.
type CallbackConfig struct {
	// Allow are the host patterns a Callback-Url may name
	// ("hooks.partner.example", "*.example.com"); required.
	Allow []string `yaml:"allow"`
	// AllowPrivate lets callbacks reach loopback, private and link-local
	// addresses (refused by default, also when a name resolves to one).
	AllowPrivate bool `yaml:"allow_private"`
	// Secrets sign every delivery ("whsec_" + base64), one signature
	// each: list the new one next to the old one while receivers rotate.
	Secrets []string `yaml:"secrets"`
	// RetryFor is how long a delivery is retried (default 1h, or
	// results.ttl if shorter; at most results.ttl, which keeps the reply).
	RetryFor time.Duration `yaml:"retry_for"`
	// Timeout bounds one attempt (default 10s).
	Timeout time.Duration `yaml:"timeout"`
}

// profile is the route's wire profile: its own, or the broker's default;
// cloudevents on RabbitMQ is the AMQP binding's.
func (rc RouteConfig) profile(b BrokerConfig) envelope.Profile {
	p := envelope.Profile(b.Profile)
	if rc.Profile != "" {
		p = envelope.Profile(rc.Profile)
	}
	if p == envelope.ProfileCloudEvents && b.Kind == "rabbitmq" {
		return envelope.ProfileCloudEventsAMQP
	}
	return p
}

// checkProfile refuses an unknown profile, and one the broker does not
// carry: zilla and cloudevents are Kafka header conventions.
func (c *Config) checkProfile(name string) error {
	p, err := envelope.ParseProfile(name)
	if err != nil {
		return err
	}
	if p == envelope.ProfileZilla && c.Broker.Kind == "rabbitmq" {
		return fmt.Errorf("%s is a Kafka profile (broker.kind is rabbitmq); on RabbitMQ use syncgate, spring or cloudevents", p)
	}
	return nil
}

// publishTo is where the route's requests are published: Destination, or
// on RabbitMQ with Exchange, the exchange and routing key.
func (rc RouteConfig) publishTo() string {
	return publishAddress(rc.Destination, rc.Exchange, rc.RoutingKey)
}

// publishAddress is where a route or a broker sink publishes: destination
// (a topic, a queue), or RabbitMQ's exchange with routing key (default:
// destination).
func publishAddress(destination, exchange, routingKey string) string {
	if exchange == "" {
		return destination
	}
	if routingKey == "" {
		routingKey = destination
	}
	return rabbitmq.ExchangeAddress(exchange, routingKey)
}

// DefaultMaxInFlight is http.max_in_flight when the file, the environment
// and the flags leave it unset.
const DefaultMaxInFlight = 10_000

// DefaultReadinessDelay is shutdown.readiness_delay when the file, the
// environment and the flags leave it unset; 0 is no delay.
const DefaultReadinessDelay = 5 * time.Second

// DefaultDrainTimeout is shutdown.drain_timeout when the file, the
// environment and the flags leave it unset; 0 is no drain: requests in
// flight are answered at once (202 or 503).
const DefaultDrainTimeout = 10 * time.Second

// base is what a configuration file (or the embedded configuration), the
// environment and flags are laid over. It holds the defaults of the fields
// whose zero value means something (http.max_in_flight: 0 is no limit;
// shutdown.readiness_delay and shutdown.drain_timeout: 0 is none), so
// that an explicit zero can be told from an unset field; every other
// default is filled in by SetDefaults, and an explicit zero on those
// fields is refused (see zeros.go).
func base() Config {
	var c Config
	c.HTTP.MaxInFlight = DefaultMaxInFlight
	c.Shutdown.ReadinessDelay = DefaultReadinessDelay
	c.Shutdown.DrainTimeout = DefaultDrainTimeout
	c.Auth.JWT.Leeway = DefaultJWTLeeway
	return c
}

// Embedded returns the configuration of `go run ./cmd/syncgate` with no
// config file: memory broker, the demo service, and its routes.
func Embedded() Config {
	c := base()
	c.Broker = BrokerConfig{Kind: "memory"}
	c.Demo = DemoConfig{Enabled: true}
	c.Routes = []RouteConfig{
		{Name: "echo", Method: "POST", Path: "/demo/echo", Destination: demo.EchoDestination, Mode: "auto"},
		{Name: "sleep", Method: "POST", Path: "/demo/sleep", Destination: demo.SleepDestination, Mode: "auto", Wait: 2 * time.Second, Timeout: 60 * time.Second},
		{Name: "sleep-sync", Method: "POST", Path: "/demo/sleep-sync", Destination: demo.SleepDestination, Mode: "sync", Timeout: 2 * time.Second},
		// Scatter-gather: one request to both demo services, one answer.
		{Name: "gather", Method: "POST", Path: "/demo/gather", Mode: "auto", Wait: 2 * time.Second, Timeout: 60 * time.Second,
			Parts: []PartConfig{{Name: "echo", Destination: demo.EchoDestination}, {Name: "sleep", Destination: demo.SleepDestination}}},
	}
	return c
}

// Parse decodes a YAML configuration over the defaults that SetDefaults
// cannot apply (see base). Unknown fields and values of the wrong type are
// errors naming the line and the YAML path, e.g.
// "line 5: broker.kafka.brokerz: unknown field; did you mean "brokers"?".
func Parse(data []byte) (Config, error) {
	c := base()
	if err := decodeChecked(data, &c); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// LoadFile reads and parses a YAML configuration file.
func LoadFile(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// SetDefaults fills in every unset field.
func (c *Config) SetDefaults() {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	defDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	if c.Node == "" {
		c.Node = defaultNodeID()
	}
	if c.Cluster.Enabled && len(c.Cluster.Addrs) > 0 && c.Addr == "" {
		// A node not in cluster.addrs keeps no address: Validate names it,
		// rather than the node listening where no one expects it.
		c.Addr = c.Cluster.Addrs[c.Node]
	} else {
		def(&c.Addr, "127.0.0.1:8080")
	}
	def(&c.ReplyTo, "syncgate.reply."+c.Node)
	def(&c.Log.Level, "info")
	def(&c.Log.Format, "text")
	def(&c.Broker.Kind, "memory")
	defDur(&c.Broker.PublishTimeout, 5*time.Second)
	if c.Broker.ReplyConcurrency == 0 {
		c.Broker.ReplyConcurrency = 16
	}
	if c.Broker.Memory.QueueSize == 0 {
		c.Broker.Memory.QueueSize = 10000
	}
	switch c.Broker.Kind {
	case "kafka":
		c.Broker.Kafka.SetDefaults()
	case "rabbitmq":
		c.Broker.RabbitMQ.SetDefaults()
	case "nats":
		c.Broker.NATS.SetDefaults()
	}
	if c.Demo.Concurrency == 0 {
		c.Demo.Concurrency = 1024
	}
	if c.HTTP.MaxBody == 0 {
		c.HTTP.MaxBody = 1 << 20
	}
	if c.HTTP.MaxHeaderBytes == 0 {
		c.HTTP.MaxHeaderBytes = 64 << 10
	}
	defDur(&c.HTTP.ReadHeaderTimeout, 10*time.Second)
	defDur(&c.HTTP.IdleTimeout, 120*time.Second)
	defDur(&c.HTTP.MaxTimeout, 60*time.Second)
	defDur(&c.HTTP.BodyTimeout, 30*time.Second)
	defDur(&c.HTTP.MaxWait, 60*time.Second)
	defDur(&c.HTTP.MaxPollWait, 30*time.Second)
	defDur(&c.HTTP.StreamHeartbeat, 15*time.Second)
	defDur(&c.HTTP.StreamWriteTimeout, 10*time.Second)
	if c.Cluster.Enabled {
		// Redis holds results outside the process: keep them a day.
		defDur(&c.Results.TTL, 24*time.Hour)
	}
	defDur(&c.Results.TTL, 10*time.Minute)
	if c.Results.MaxEntries == 0 {
		c.Results.MaxEntries = 100_000
	}
	if c.Results.MaxBytes == 0 {
		c.Results.MaxBytes = correlation.DefaultMaxBytes
	}
	defDur(&c.Results.RetryAfter, time.Second)
	c.Auth.JWT.setDefaults()
	defDur(&c.Idempotency.TTL, c.Results.TTL)
	if c.Idempotency.MaxEntries == 0 {
		c.Idempotency.MaxEntries = 100_000
	}
	if c.Cluster.Enabled {
		c.Cluster.Redis.ResultTTL = c.Results.TTL
		c.Cluster.Redis.IdempotencyTTL = c.Idempotency.TTL
		c.Cluster.Redis.SetDefaults()
		defDur(&c.Cluster.LeaseTTL, 10*time.Second)
		defDur(&c.Cluster.ClaimMargin, 5*time.Second)
	}
	defaultRateLimit(&c.Auth.RateLimit.Rate, &c.Auth.RateLimit.Per, &c.Auth.RateLimit.Burst)
	c.TLS.setDefaults()
	c.Taps.setDefaults()
	c.Outbox.setDefaults()
	for i := range c.Routes {
		r := &c.Routes[i]
		defaultRateLimit(&r.RateLimit.Rate, &r.RateLimit.Per, &r.RateLimit.Burst)
		r.Method = strings.ToUpper(r.Method)
		def(&r.Mode, string(gateway.ModeAuto))
		defDur(&r.Timeout, 30*time.Second)
		defDur(&r.Wait, 5*time.Second)
		if r.MaxBody == 0 {
			r.MaxBody = c.HTTP.MaxBody
		}
		defDur(&r.MaxWait, c.HTTP.MaxWait)
		def(&r.Name, r.Method+" "+r.Path)
		if cb := r.Callback; cb != nil {
			defDur(&cb.RetryFor, min(time.Hour, c.Results.TTL))
			defDur(&cb.Timeout, 10*time.Second)
		}
	}
}

// Validate checks a defaulted Config; its errors name the field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if !validLevel(c.Log.Level) {
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "%q is not text or json", c.Log.Format)
	}
	switch c.Broker.Kind {
	case "memory":
	case "kafka":
		if err := c.Broker.Kafka.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("broker.%w", err))
		}
	case "rabbitmq":
		if err := c.Broker.RabbitMQ.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("broker.%w", err))
		}
	case "nats":
		if err := c.Broker.NATS.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("broker.%w", err))
		}
		if strings.ContainsAny(c.ReplyTo, " *>") {
			bad("reply_to", "%q is not a NATS subject (no spaces, * or >); check node", c.ReplyTo)
		} else if c.Broker.NATS.Mode == natsb.ModeJetStream && !strings.HasPrefix(c.ReplyTo, c.Broker.NATS.ReplyPrefix) {
			bad("reply_to", "%q must start with broker.nats.reply_prefix %q in jetstream mode (replies are core NATS)", c.ReplyTo, c.Broker.NATS.ReplyPrefix)
		}
	default:
		bad("broker.kind", "unknown broker %q (want memory, kafka, rabbitmq or nats)", c.Broker.Kind)
	}
	if c.Broker.Memory.QueueSize < 0 {
		bad("broker.memory.queue_size", "must be positive")
	}
	if c.Broker.ReplyConcurrency < 0 {
		bad("broker.reply_concurrency", "must be positive")
	}
	if c.Demo.Concurrency < 0 {
		bad("demo.concurrency", "must be positive")
	}
	if c.HTTP.MaxBody < 0 {
		bad("http.max_body", "must be positive")
	}
	if c.HTTP.MaxHeaderBytes < 0 || c.HTTP.MaxHeaderBytes > 1<<30 {
		bad("http.max_header_bytes", "must be between 0 and 1GiB")
	}
	negativeDurations(c, bad)
	validateAuth(c, bad)
	validateTLS(c, bad)
	if c.HTTP.MaxInFlight < 0 {
		bad("http.max_in_flight", "must be positive")
	}
	if c.Results.MaxEntries < 0 {
		bad("results.max_entries", "must be positive")
	}
	if c.Results.MaxBytes < 0 {
		bad("results.max_bytes", "must be positive")
	}
	if c.Idempotency.TTL <= 0 || c.Idempotency.TTL > c.Results.TTL {
		bad("idempotency.ttl", "%s is outside 0..results.ttl (%s): a replayed reply must outlive its key", c.Idempotency.TTL, c.Results.TTL)
	}
	if c.Idempotency.MaxEntries < 0 {
		bad("idempotency.max_entries", "must be positive")
	}
	if c.Cluster.Enabled {
		if c.Broker.Kind == "memory" {
			bad("cluster.enabled", "cluster mode needs a broker the nodes share (kafka or rabbitmq), not memory")
		}
		if err := c.Cluster.Redis.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("cluster.%w", err))
		}
		if c.Cluster.LeaseTTL < 30*time.Millisecond {
			bad("cluster.lease_ttl", "%s is too short (at least 30ms)", c.Cluster.LeaseTTL)
		}
		if c.Cluster.ClaimMargin < 0 {
			bad("cluster.claim_margin", "must not be negative")
		}
	}
	if c.Addr == "" && c.Cluster.Enabled {
		if _, listed := c.Cluster.Addrs[c.Node]; listed {
			bad("cluster.addrs."+c.Node, "empty address")
		} else {
			ids := slices.Sorted(maps.Keys(c.Cluster.Addrs))
			bad("node", "%q is not in cluster.addrs (known: %s): pick one with --node, or give this node its address with --addr", c.Node, strings.Join(ids, ", "))
		}
	}
	if strings.ContainsAny(c.Node, " /\t\n") {
		bad("node", "%q must not contain spaces or slashes", c.Node)
	}
	if len(c.Routes) == 0 {
		bad("routes", "at least one route is required")
	}
	if err := c.checkProfile(c.Broker.Profile); err != nil {
		bad("broker.profile", "%v", err)
	}
	c.checkTaps(bad)
	c.checkOutbox(bad)
	seen := make(map[string]int)
	for i, r := range c.Routes {
		f := fmt.Sprintf("routes[%d]", i)
		switch r.Method {
		case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		default:
			bad(f+".method", "%q is not an HTTP method", r.Method)
		}
		if !strings.HasPrefix(r.Path, "/") {
			bad(f+".path", "%q must start with /", r.Path)
		}
		if len(r.Parts) > 0 || len(r.Destinations) > 0 {
			c.checkParts(f, r, bad)
		} else if r.Destination == "" && (r.Exchange == "" || r.RoutingKey == "") {
			bad(f+".destination", "required (with exchange, unless routing_key is set; or parts, for scatter-gather)")
		}
		if _, err := gateway.ParseMode(r.Mode); err != nil {
			bad(f+".mode", "%q is not sync, async or auto", r.Mode)
		}
		if r.Timeout < 0 || r.Timeout > c.HTTP.MaxTimeout {
			bad(f+".timeout", "%s is outside 0..http.max_timeout (%s)", r.Timeout, c.HTTP.MaxTimeout)
		}
		if r.Wait < 0 {
			bad(f+".wait", "must not be negative")
		}
		if r.MaxBody < 0 {
			bad(f+".max_body", "must be positive")
		}
		if r.MaxInFlight < 0 {
			bad(f+".max_in_flight", "must be positive")
		}
		if r.MaxWait < 0 || r.MaxWait > c.HTTP.MaxWait {
			bad(f+".max_wait", "%s is outside 0..http.max_wait (%s)", r.MaxWait, c.HTTP.MaxWait)
		}
		switch {
		case r.Exchange != "" && c.Broker.Kind != "rabbitmq":
			bad(f+".exchange", "only on RabbitMQ (broker.kind is %s)", c.Broker.Kind)
		case r.RoutingKey != "" && r.Exchange == "":
			bad(f+".routing_key", "goes with exchange (without it, destination is the queue)")
		}
		if r.Profile != "" {
			if err := c.checkProfile(r.Profile); err != nil {
				bad(f+".profile", "%v", err)
			}
		}
		if r.Key != "" {
			if _, err := api.ParseKeyTemplate(r.Key, r.Path); err != nil {
				bad(f+".key", "%v", err)
			}
		}
		if cb := r.Callback; cb != nil {
			c.checkCallback(f+".callback", r, bad)
		}
		key := r.Method + " " + r.Path
		if j, dup := seen[key]; dup {
			bad(f, "%s is already routes[%d]", key, j)
		}
		seen[key] = i
	}
	return errors.Join(errs...)
}

// maxParts bounds a scatter-gather route's parts: each part's stored reply
// reads every part's record to decide the rule.
const maxParts = 32

// checkParts checks the scatter-gather settings of route r (at path f).
func (c *Config) checkParts(f string, r RouteConfig, bad func(field, format string, args ...any)) {
	switch {
	case len(r.Parts) > 0 && len(r.Destinations) > 0:
		bad(f+".destinations", "give parts or destinations, not both")
	case r.Destination != "" || r.Exchange != "" || r.RoutingKey != "":
		bad(f+".destination", "a scatter-gather route publishes to its parts' destinations: leave destination, exchange and routing_key out")
	case r.Outbox:
		bad(f+".outbox", "not on a scatter-gather route")
	}
	parts := r.parts()
	switch {
	case len(parts) < 2:
		bad(f+".parts", "a scatter-gather route needs two parts at least (for one, use destination)")
	case len(parts) > maxParts:
		bad(f+".parts", "%d parts; at most %d (each stored reply reads every part's record)", len(parts), maxParts)
	}
	names := make(map[string]bool, len(parts))
	for j, p := range parts {
		pf := fmt.Sprintf("%s.parts[%d]", f, j)
		if len(r.Destinations) > 0 {
			pf = fmt.Sprintf("%s.destinations[%d]", f, j)
		}
		switch {
		case p.Name == "" || strings.ContainsFunc(p.Name, func(c rune) bool { return c <= ' ' || c == 0x7f }):
			bad(pf+".name", "%q: a name without spaces or control characters is required", p.Name)
		case names[p.Name]:
			bad(pf+".name", "%q is named twice", p.Name)
		}
		names[p.Name] = true
		if p.Destination == "" {
			bad(pf+".destination", "required")
		}
		if p.Timeout < 0 || (r.Timeout > 0 && p.Timeout > r.Timeout) {
			bad(pf+".timeout", "%s is outside 0..the route's timeout (%s)", p.Timeout, r.Timeout)
		}
	}
	rule, err := gateway.ParseGather(r.Gather)
	if err != nil {
		bad(f+".gather", "%q is not all, any or quorum", r.Gather)
	}
	switch {
	case rule == gateway.GatherQuorum && (r.Quorum < 1 || r.Quorum > len(parts)):
		bad(f+".quorum", "%d is outside 1..%d (the number of parts)", r.Quorum, len(parts))
	case rule != gateway.GatherQuorum && r.Quorum != 0:
		bad(f+".quorum", "only with gather: quorum")
	}
}

// checkCallback checks route r's callback section (at path f).
func (c *Config) checkCallback(f string, r RouteConfig, bad func(field, format string, args ...any)) {
	cb := r.Callback
	if r.Mode == string(gateway.ModeSync) {
		bad(f, "a sync route never answers 202, so it has nothing to call back")
	}
	if len(cb.Allow) == 0 {
		bad(f+".allow", "list the hosts callbacks may go to (\"hooks.example.com\", \"*.example.com\")")
	}
	for j, p := range cb.Allow {
		if _, err := path.Match(p, "x"); err != nil || p == "" {
			bad(fmt.Sprintf("%s.allow[%d]", f, j), "%q is not a host pattern", p)
		}
	}
	if len(cb.Secrets) == 0 {
		bad(f+".secrets", "at least one signing secret (whsec_ followed by the base64 of at least 16 random bytes; 32 is usual)")
	}
	for j, sec := range cb.Secrets {
		if _, err := webhook.ParseSecret(sec); err != nil {
			bad(fmt.Sprintf("%s.secrets[%d]", f, j), "%v", err)
		}
	}
	if cb.RetryFor <= 0 {
		bad(f+".retry_for", "must be positive")
	}
	if ttl := c.Results.TTL; cb.RetryFor > ttl {
		bad(f+".retry_for", "%s outlives results.ttl (%s), which keeps the reply to deliver", cb.RetryFor, ttl)
	}
	if cb.Timeout <= 0 {
		bad(f+".timeout", "must be positive")
	}
}

func validLevel(s string) bool {
	switch s {
	case "debug", "info", "warn", "error":
		return true
	}
	return false
}

func defaultNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	host = strings.NewReplacer(" ", "-", "/", "-", ".", "-").Replace(host)
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// forwardHeaders is the request headers route rc forwards: the global list
// and the route's own.
func (c *Config) forwardHeaders(rc RouteConfig) []string {
	return append(append([]string(nil), c.ForwardHeaders...), rc.ForwardHeaders...)
}
