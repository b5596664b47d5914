package node

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/syncgate/syncgate/correlation/redisstate"
)

// setting is one scalar field settable by environment and flag. The same
// table drives both, so their names cannot drift apart.
type setting struct {
	name  string // flag name; the environment name is SYNCGATE_<NAME>
	usage string
	value func(*Config) flag.Value
}

var settings = []setting{
	{"addr", "HTTP listen address", func(c *Config) flag.Value { return (*stringValue)(&c.Addr) }},
	{"admin-addr", "admin listen address for /metrics and the verbose /readyz; empty: served on --addr", func(c *Config) flag.Value { return (*stringValue)(&c.AdminAddr) }},
	{"node", "node id; in cluster mode, picks the listen address from cluster.addrs", func(c *Config) flag.Value { return (*stringValue)(&c.Node) }},
	{"reply-to", "this node's reply address", func(c *Config) flag.Value { return (*stringValue)(&c.ReplyTo) }},
	{"log-level", "debug, info, warn or error", func(c *Config) flag.Value { return (*stringValue)(&c.Log.Level) }},
	{"log-format", "text or json", func(c *Config) flag.Value { return (*stringValue)(&c.Log.Format) }},
	{"broker", "broker backend: memory, kafka, rabbitmq or nats", func(c *Config) flag.Value { return (*stringValue)(&c.Broker.Kind) }},
	{"kafka-brokers", "Kafka bootstrap brokers, comma-separated host:port", func(c *Config) flag.Value { return (*listValue)(&c.Broker.Kafka.Brokers) }},
	{"rabbitmq-url", "RabbitMQ URL, amqp://user:pass@host:5672/vhost", func(c *Config) flag.Value { return (*stringValue)(&c.Broker.RabbitMQ.URL) }},
	{"wait-for-broker", "give up starting when the broker (or Redis) is not reachable within this; 0: wait for ever", func(c *Config) flag.Value { return (*durationValue)(&c.Broker.WaitFor) }},
	{"cluster", "cluster mode: results, keys and reply routing in Redis", func(c *Config) flag.Value { return (*boolValue)(&c.Cluster.Enabled) }},
	{"redis-addr", "Redis host:port for cluster mode", func(c *Config) flag.Value { return (*stringValue)(&c.Cluster.Redis.Addr) }},
	{"redis-cluster-addrs", "Redis Cluster seed nodes for cluster mode, comma-separated host:port (instead of --redis-addr)", func(c *Config) flag.Value { return (*listValue)(&c.Cluster.Redis.ClusterAddrs) }},
	{"redis-master-name", "Redis Sentinel: the master's name, with --redis-sentinel-addrs (instead of --redis-addr)", func(c *Config) flag.Value { return (*stringValue)(&c.Cluster.Redis.MasterName) }},
	{"redis-sentinel-addrs", "Redis Sentinel: the sentinels, comma-separated host:port", func(c *Config) flag.Value { return (*listValue)(&c.Cluster.Redis.SentinelAddrs) }},
	{"redis-username", "Redis ACL user", func(c *Config) flag.Value { return (*stringValue)(&c.Cluster.Redis.Username) }},
	{"redis-password", "Redis password (prefer SYNCGATE_REDIS_PASSWORD: a flag shows in ps)", func(c *Config) flag.Value { return (*stringValue)(&c.Cluster.Redis.Password) }},
	{"demo", "run the demo service in this process; on without --config", func(c *Config) flag.Value { return (*boolValue)(&c.Demo.Enabled) }},
	{"max-body", "default request body limit, e.g. 1MiB", func(c *Config) flag.Value { return &c.HTTP.MaxBody }},
	{"readiness-delay", "on shutdown, how long /readyz answers 503 before the listener closes; 0: none", func(c *Config) flag.Value { return (*durationValue)(&c.Shutdown.ReadinessDelay) }},
	{"drain-timeout", "on shutdown, how long in-flight requests may finish once the listener closed; 0: answer them at once", func(c *Config) flag.Value { return (*durationValue)(&c.Shutdown.DrainTimeout) }},
	{"result-ttl", "how long a reply stays pollable; 24h in cluster mode", func(c *Config) flag.Value { return (*durationValue)(&c.Results.TTL) }},
	{"result-max-bytes", "cap on the stored results' size", func(c *Config) flag.Value { return &c.Results.MaxBytes }},
	{"max-in-flight", "requests served at once before 503; 0: no limit", func(c *Config) flag.Value { return (*intValue)(&c.HTTP.MaxInFlight) }},
	{"max-header-bytes", "request line and headers limit", func(c *Config) flag.Value { return &c.HTTP.MaxHeaderBytes }},
	{"read-header-timeout", "time to read a request's headers", func(c *Config) flag.Value { return (*durationValue)(&c.HTTP.ReadHeaderTimeout) }},
	{"idle-timeout", "keep-alive idle timeout", func(c *Config) flag.Value { return (*durationValue)(&c.HTTP.IdleTimeout) }},
	{"body-timeout", "time to read a request body", func(c *Config) flag.Value { return (*durationValue)(&c.HTTP.BodyTimeout) }},
	{"max-timeout", "cap on route timeouts", func(c *Config) flag.Value { return (*durationValue)(&c.HTTP.MaxTimeout) }},
	{"max-wait", "cap on Prefer: wait", func(c *Config) flag.Value { return (*durationValue)(&c.HTTP.MaxWait) }},
	{"max-poll-wait", "cap on ?wait= of a long poll", func(c *Config) flag.Value { return (*durationValue)(&c.HTTP.MaxPollWait) }},
	{"tls-cert-file", "PEM certificate chain: serve HTTPS on --addr (with --tls-key-file)", func(c *Config) flag.Value { return (*stringValue)(&c.TLS.CertFile) }},
	{"tls-key-file", "PEM private key of --tls-cert-file", func(c *Config) flag.Value { return (*stringValue)(&c.TLS.KeyFile) }},
	{"tls-client-ca-file", "PEM CA bundle: authenticate callers by client certificate (mTLS)", func(c *Config) flag.Value { return (*stringValue)(&c.TLS.ClientCAFile) }},
	{"idempotency-ttl", "how long an Idempotency-Key is bound, at most result-ttl", func(c *Config) flag.Value { return (*durationValue)(&c.Idempotency.TTL) }},
}

// EnvName returns the environment variable of a setting.
func EnvName(flagName string) string {
	return "SYNCGATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Load builds the effective Config from args and the environment: the YAML
// file named by --config (or SYNCGATE_CONFIG; the embedded demo
// configuration when neither is given), then SYNCGATE_* variables, then
// flags. It applies defaults and validates. getenv is os.Getenv in main.
// --help writes the usage to help and returns flag.ErrHelp; a bad flag is
// an error (one line, no usage), for the caller to print once.
func Load(args []string, getenv func(string) string, help io.Writer) (Config, error) {
	fs := flag.NewFlagSet("syncgate", flag.ContinueOnError)
	// The flag package would print the error and the whole usage on any
	// mistake; the caller prints the error, and --help prints the usage.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	configPath := fs.String("config", getenv("SYNCGATE_CONFIG"), "")
	// Flags are recorded as raw strings and applied after the file and the
	// environment, so that flags win.
	raw := make(map[string]string)
	for _, s := range settings {
		record := func(v string) error {
			// Validate now, so that a bad flag is reported with its name.
			if err := zeroSetting(s, v); err != nil {
				return err
			}
			raw[s.name] = v
			return nil
		}
		if isBool(s) {
			fs.BoolFunc(s.name, s.usage, record)
		} else {
			fs.Func(s.name, s.usage, record)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(help)
			return Config{}, err
		}
		return Config{}, flagError(err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q (syncgate --help lists the flags)", fs.Arg(0))
	}

	cfg := Embedded()
	if *configPath != "" {
		var err error
		if cfg, err = LoadFile(*configPath); err != nil {
			return Config{}, err
		}
	}
	overrideRedisDeployment(&cfg, getenv, raw)
	for _, s := range settings {
		if v, ok := lookupEnv(getenv, EnvName(s.name)); ok {
			if err := zeroSetting(s, v); err != nil {
				return Config{}, fmt.Errorf("%s=%q: %w", EnvName(s.name), v, err)
			}
			_ = s.value(&cfg).Set(v) // checked by zeroSetting
		}
	}
	for _, s := range settings {
		if v, ok := raw[s.name]; ok {
			_ = s.value(&cfg).Set(v) // validated while parsing
		}
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

func lookupEnv(getenv func(string) string, name string) (string, bool) {
	if getenv == nil {
		getenv = os.Getenv
	}
	v := getenv(name)
	return v, v != ""
}

// redisModeSettings are the settings that pick a Redis deployment.
var redisModeSettings = map[string]string{
	"redis-addr":           redisstate.ModeSingle,
	"redis-cluster-addrs":  redisstate.ModeCluster,
	"redis-master-name":    redisstate.ModeSentinel,
	"redis-sentinel-addrs": redisstate.ModeSentinel,
}

// overrideRedisDeployment lets the environment or a flag pick another
// Redis deployment than the file: when they name one deployment only,
// what the file says about the other two is dropped, so that
// --redis-cluster-addrs on a file with cluster.redis.addr means the
// cluster. Two deployments named by flags or variables still conflict,
// and Validate says so.
func overrideRedisDeployment(cfg *Config, getenv func(string) string, flags map[string]string) {
	modes := make(map[string]bool)
	for name, mode := range redisModeSettings {
		_, flagged := flags[name]
		_, env := lookupEnv(getenv, EnvName(name))
		if flagged || env {
			modes[mode] = true
		}
	}
	if len(modes) != 1 {
		return
	}
	r := &cfg.Cluster.Redis
	if !modes[redisstate.ModeSingle] {
		r.Addr = ""
	}
	if !modes[redisstate.ModeCluster] {
		r.ClusterAddrs = nil
	}
	if !modes[redisstate.ModeSentinel] {
		r.MasterName, r.SentinelAddrs = "", nil
	}
}

type stringValue string

func (s *stringValue) Set(v string) error { *s = stringValue(v); return nil }
func (s *stringValue) String() string     { return string(*s) }

type listValue []string

func (l *listValue) Set(v string) error {
	*l = nil
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*l = append(*l, item)
		}
	}
	return nil
}
func (l *listValue) String() string { return strings.Join(*l, ",") }

type boolValue bool

func (b *boolValue) Set(v string) error {
	x, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("not a boolean (true or false)")
	}
	*b = boolValue(x)
	return nil
}
func (b *boolValue) String() string   { return strconv.FormatBool(bool(*b)) }
func (b *boolValue) IsBoolFlag() bool { return true }

type durationValue time.Duration

func (d *durationValue) Set(v string) error {
	x, err := time.ParseDuration(v)
	if err != nil {
		return errors.New("not a duration (e.g. 10s, 1m30s)")
	}
	*d = durationValue(x)
	return nil
}
func (d *durationValue) String() string { return time.Duration(*d).String() }

type intValue int

func (i *intValue) Set(v string) error {
	x, err := strconv.Atoi(v)
	if err != nil {
		return errors.New("not an integer")
	}
	*i = intValue(x)
	return nil
}
func (i *intValue) String() string { return strconv.Itoa(int(*i)) }
