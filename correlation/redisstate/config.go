package redisstate

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	goredis "github.com/redis/go-redis/v9"
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
type Config struct {
	// Addr is host:port of the server (default 127.0.0.1:6379).
	Addr     string `yaml:"addr"`
	Password string `yaml:"password"`
	DB       int    `yaml:"db"`
	// Prefix starts every key and channel (default "syncgate:"); tests and
	// several deployments sharing one server tell their keys apart by it.
	Prefix string `yaml:"prefix"`
	// ResultTTL is how long a reply (or a cancellation) stays readable once
	// stored (default 24 h).
	ResultTTL time.Duration `yaml:"result_ttl"`
	// IdempotencyTTL is how long an Idempotency-Key stays bound (default 24 h).
	IdempotencyTTL time.Duration `yaml:"idempotency_ttl"`
	DialTimeout    time.Duration `yaml:"dial_timeout"`  // default 2 s
	ReadTimeout    time.Duration `yaml:"read_timeout"`  // default 1 s
	WriteTimeout   time.Duration `yaml:"write_timeout"` // default 1 s
	// PoolSize caps the connections (default: go-redis', 10 per CPU).
	PoolSize int `yaml:"pool_size"`
	// Logger receives the Router's warnings, under component redis
	// (default slog.Default()).
	Logger *slog.Logger `yaml:"-"`
}

// SetDefaults fills the zero fields.
func (c *Config) SetDefaults() {
	if c.Addr == "" {
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
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("redis.addr: %q is not host:port: %w", c.Addr, err)
	}
	if c.DB < 0 {
		return fmt.Errorf("redis.db: %d is negative", c.DB)
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

// Options returns the go-redis options of the configuration.
func (c Config) Options() *goredis.Options {
	return &goredis.Options{
		Addr:         c.Addr,
		Password:     c.Password,
		DB:           c.DB,
		DialTimeout:  c.DialTimeout,
		ReadTimeout:  c.ReadTimeout,
		WriteTimeout: c.WriteTimeout,
		PoolSize:     c.PoolSize,
		// go-redis retries a failed dial 5 times inside each of its 3
		// command retries; one dial per attempt keeps an outage a fast
		// 503 instead of seconds of waiting.
		DialerRetries: 1,
	}
}

// NewClient returns a client for the configuration (defaults applied). It
// does not connect: the first command does.
func NewClient(cfg Config) *goredis.Client {
	cfg.SetDefaults()
	return goredis.NewClient(cfg.Options())
}

// ms converts a TTL to Redis milliseconds, rounding up so that a positive
// TTL never becomes 0 (which would delete the key).
func ms(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
