package redisstate

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/internal/clienttls"
)

// ErrUnavailable wraps every error caused by Redis itself rather than by the
// data: the server is unreachable, too slow, or answered garbage. The
// gateway maps it to 503 (gateway.ErrStore).
var ErrUnavailable = errors.New("redis: unavailable")

// unavailable wraps a client error with ErrUnavailable, keeping the cause
// (a context error stays visible to errors.Is).
func unavailable(op string, err error) error {
	return fmt.Errorf("redis: %s: %w: %w", op, ErrUnavailable, err)
}

// Config configures the connection and the keys. Zero fields take the
// defaults of SetDefaults.
//
// One of three deployments: a single server (Addr), a Sentinel set that
// names the master (MasterName and SentinelAddrs), or a Redis Cluster
// (ClusterAddrs, a seed list). Username, Password and TLS apply to the data
// nodes in all three.
type Config struct {
	// Addr is host:port of a single server (default 127.0.0.1:6379 when
	// neither ClusterAddrs nor MasterName is set).
	Addr string `yaml:"addr"`
	// ClusterAddrs are host:port of some nodes of a Redis Cluster; the
	// client discovers the rest, and follows resharding and failover.
	ClusterAddrs []string `yaml:"cluster_addrs"`
	// MasterName is the master's name in Sentinel; SentinelAddrs are
	// host:port of the sentinels. The client asks them for the master and
	// follows a failover.
	MasterName    string   `yaml:"master_name"`
	SentinelAddrs []string `yaml:"sentinel_addrs"`
	// SentinelUsername and SentinelPassword authenticate to the sentinels,
	// when they want it (Username and Password are the data nodes').
	SentinelUsername string `yaml:"sentinel_username"`
	SentinelPassword string `yaml:"sentinel_password"`
	// Username and Password authenticate to the data nodes: an ACL user, or
	// the password alone for requirepass.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// DB selects the database; a Redis Cluster has only 0.
	DB int `yaml:"db"`
	// TLS encrypts the connections to the data nodes and sentinels.
	TLS clienttls.Config `yaml:"tls"`
	// Prefix starts every key and channel (default "syncgate:"); tests and
	// several deployments sharing one server tell their keys apart by it.
	// It may not hold '{' or '}': keys carry Redis Cluster hash tags.
	Prefix string `yaml:"prefix"`
	// ResultTTL is how long a reply (or a cancellation) stays readable once
	// stored (default 24 h).
	ResultTTL time.Duration `yaml:"result_ttl"`
	// IdempotencyTTL is how long an Idempotency-Key stays bound (default 24 h).
	IdempotencyTTL time.Duration `yaml:"idempotency_ttl"`
	DialTimeout    time.Duration `yaml:"dial_timeout"`  // default 2 s
	ReadTimeout    time.Duration `yaml:"read_timeout"`  // default 1 s
	WriteTimeout   time.Duration `yaml:"write_timeout"` // default 1 s
	// PoolSize caps the connections, per node of a cluster (default:
	// go-redis', 10 per CPU).
	PoolSize int `yaml:"pool_size"`
	// Logger receives the Router's warnings, under component redis
	// (default slog.Default()).
	Logger *slog.Logger `yaml:"-"`
}

// The deployments Config.Mode names.
const (
	ModeSingle   = "single"
	ModeSentinel = "sentinel"
	ModeCluster  = "cluster"
)

// Mode names the deployment the configuration points at: ModeCluster with
// ClusterAddrs, ModeSentinel with MasterName, else ModeSingle.
func (c Config) Mode() string {
	switch {
	case len(c.ClusterAddrs) > 0:
		return ModeCluster
	case c.MasterName != "" || len(c.SentinelAddrs) > 0:
		return ModeSentinel
	}
	return ModeSingle
}

// Servers describes where the configuration points, for logs and errors:
// the address, the sentinels and master name, or the cluster seeds.
func (c Config) Servers() string {
	switch c.Mode() {
	case ModeCluster:
		return "cluster " + strings.Join(c.ClusterAddrs, ",")
	case ModeSentinel:
		return "master " + c.MasterName + " of sentinels " + strings.Join(c.SentinelAddrs, ",")
	}
	return c.Addr
}

// Explain returns err with a hint at the setting that usually causes it:
// a deployment of another kind than configured (MOVED from a cluster node
// configured as addr, a single server configured as cluster_addrs, data
// nodes or an unknown master name given for Sentinel), and the errors
// Redis' TLS and ACL checks give a client that lacks them (a server that
// requires TLS closes a plain connection at once, EOF; one that requires a
// client certificate says so; the ACL answers NOAUTH or WRONGPASS). Other
// errors, and nil, are returned as they are.
func (c Config) Explain(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var hint string
	switch {
	case strings.Contains(msg, "MOVED "):
		hint = "the server is a node of a Redis Cluster: list some of its nodes in redis.cluster_addrs instead of addr"
	case strings.Contains(msg, "cluster support disabled"):
		hint = "the server is not part of a Redis Cluster: set redis.addr (or master_name and sentinel_addrs) instead of cluster_addrs"
	case strings.Contains(msg, "unknown command 'sentinel'"):
		hint = "redis.sentinel_addrs must name the sentinels (port 26379 by default), not the data nodes"
	case c.Mode() == ModeSentinel && strings.HasSuffix(msg, "redis: nil"):
		hint = fmt.Sprintf("no sentinel monitors a master named %q: check redis.master_name", c.MasterName)
	case !c.TLS.Enable && (errors.Is(err, io.EOF) || strings.HasSuffix(msg, "EOF")):
		hint = "the server closed the connection at once: if it requires TLS, set redis.tls.enable"
	case strings.Contains(msg, "certificate required"):
		hint = "the server requires a client certificate: set redis.tls.cert_file and key_file"
	case strings.Contains(msg, "NOAUTH"):
		hint = "the server requires a password: set redis.username and redis.password"
	case strings.Contains(msg, "WRONGPASS") && strings.Contains(msg, "sentinels"):
		hint = "check redis.sentinel_username and sentinel_password"
	case strings.Contains(msg, "WRONGPASS"):
		hint = "check redis.username (an ACL user, or default) and redis.password"
	default:
		return err
	}
	return fmt.Errorf("%w (%s)", err, hint)
}

// SetDefaults fills the zero fields.
func (c *Config) SetDefaults() {
	if c.Addr == "" && c.Mode() == ModeSingle {
		c.Addr = "127.0.0.1:6379"
	}
	if c.Prefix == "" {
		c.Prefix = "syncgate:"
	}
	if c.ResultTTL == 0 {
		c.ResultTTL = 24 * time.Hour
	}
	if c.IdempotencyTTL == 0 {
		c.IdempotencyTTL = 24 * time.Hour
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 2 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports the first invalid field, named as in the YAML file.
func (c *Config) Validate() error {
	if err := c.validateServers(); err != nil {
		return err
	}
	if c.DB < 0 {
		return fmt.Errorf("redis.db: %d is negative", c.DB)
	}
	if c.DB != 0 && c.Mode() == ModeCluster {
		return fmt.Errorf("redis.db: %d, but a Redis Cluster has only database 0", c.DB)
	}
	if strings.ContainsAny(c.Prefix, "{}") {
		return fmt.Errorf("redis.prefix: %q holds '{' or '}', which would change the keys' Redis Cluster hash tags", c.Prefix)
	}
	if err := c.TLS.Validate("redis.tls"); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"result_ttl", c.ResultTTL}, {"idempotency_ttl", c.IdempotencyTTL},
		{"dial_timeout", c.DialTimeout}, {"read_timeout", c.ReadTimeout}, {"write_timeout", c.WriteTimeout},
	} {
		if d.v < 0 {
			return fmt.Errorf("redis.%s: %v is negative", d.name, d.v)
		}
	}
	if c.ResultTTL > 0 && c.ResultTTL < time.Millisecond || c.IdempotencyTTL > 0 && c.IdempotencyTTL < time.Millisecond {
		return errors.New("redis.result_ttl, redis.idempotency_ttl: Redis keeps TTLs in milliseconds; use at least 1ms")
	}
	if c.PoolSize < 0 {
		return fmt.Errorf("redis.pool_size: %d is negative", c.PoolSize)
	}
	return nil
}

func (c *Config) validateServers() error {
	set := 0
	for _, b := range []bool{c.Addr != "", len(c.ClusterAddrs) > 0, c.MasterName != "" || len(c.SentinelAddrs) > 0} {
		if b {
			set++
		}
	}
	if set > 1 {
		return errors.New("redis: set one of addr (a single server), cluster_addrs (a Redis Cluster) or master_name with sentinel_addrs (Sentinel)")
	}
	hostPorts := func(field string, addrs ...string) error {
		for _, a := range addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return fmt.Errorf("redis.%s: %q is not host:port: %w", field, a, err)
			}
		}
		return nil
	}
	switch c.Mode() {
	case ModeCluster:
		return hostPorts("cluster_addrs", c.ClusterAddrs...)
	case ModeSentinel:
		if c.MasterName == "" {
			return errors.New("redis.master_name: required with sentinel_addrs")
		}
		if len(c.SentinelAddrs) == 0 {
			return errors.New("redis.sentinel_addrs: required with master_name")
		}
		return hostPorts("sentinel_addrs", c.SentinelAddrs...)
	}
	return hostPorts("addr", c.Addr)
}

// Options returns the go-redis options of the configuration, for the
// client of its Mode. TLS files are read here.
func (c Config) Options() (*goredis.UniversalOptions, error) {
	tc, err := c.TLS.Build("redis.tls")
	if err != nil {
		return nil, err
	}
	o := &goredis.UniversalOptions{
		Addrs:            []string{c.Addr},
		Username:         c.Username,
		Password:         c.Password,
		DB:               c.DB,
		SentinelUsername: c.SentinelUsername,
		SentinelPassword: c.SentinelPassword,
		DialTimeout:      c.DialTimeout,
		ReadTimeout:      c.ReadTimeout,
		WriteTimeout:     c.WriteTimeout,
		PoolSize:         c.PoolSize,
		TLSConfig:        tc,
		// go-redis retries a failed dial 5 times inside each of its 3
		// command retries; one dial per attempt keeps an outage a fast
		// 503 instead of seconds of waiting.
		DialerRetries: 1,
	}
	switch c.Mode() {
	case ModeCluster:
		o.Addrs, o.IsClusterMode = c.ClusterAddrs, true
	case ModeSentinel:
		o.Addrs, o.MasterName = c.SentinelAddrs, c.MasterName
	}
	return o, nil
}

// NewClient returns a client for the configuration (defaults applied): a
// *goredis.Client for a single server, a failover client for Sentinel, a
// *goredis.ClusterClient for a Redis Cluster. It does not connect: the
// first command does. It fails only on the TLS files.
func NewClient(cfg Config) (goredis.UniversalClient, error) {
	cfg.SetDefaults()
	o, err := cfg.Options()
	if err != nil {
		return nil, err
	}
	return goredis.NewUniversalClient(o), nil
}

// ms converts a TTL to Redis milliseconds, rounding up so that a positive
// TTL never becomes 0 (which would delete the key).
func ms(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
