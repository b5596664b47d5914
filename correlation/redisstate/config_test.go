package redisstate_test

import (
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/correlation/redisstate"
)

func TestConfigDefaults(t *testing.T) {
	var c redisstate.Config
	c.SetDefaults()
	if c.Addr != "127.0.0.1:6379" || c.Prefix != "syncgate:" || c.ResultTTL != 24*time.Hour ||
		c.IdempotencyTTL != 24*time.Hour || c.DialTimeout <= 0 || c.ReadTimeout <= 0 || c.WriteTimeout <= 0 || c.Logger == nil {
		t.Fatalf("defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate of the defaults: %v", err)
	}
	o := c.Options()
	if o.Addr != c.Addr || o.ReadTimeout != c.ReadTimeout {
		t.Fatalf("Options() = %+v", o)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*redisstate.Config)
		field string
	}{
		{"addr without port", func(c *redisstate.Config) { c.Addr = "localhost" }, "redis.addr"},
		{"negative db", func(c *redisstate.Config) { c.DB = -1 }, "redis.db"},
		{"negative result ttl", func(c *redisstate.Config) { c.ResultTTL = -time.Second }, "redis.result_ttl"},
		{"negative idempotency ttl", func(c *redisstate.Config) { c.IdempotencyTTL = -time.Second }, "redis.idempotency_ttl"},
		{"sub-millisecond ttl", func(c *redisstate.Config) { c.ResultTTL = time.Microsecond }, "redis.result_ttl"},
		{"negative dial timeout", func(c *redisstate.Config) { c.DialTimeout = -1 }, "redis.dial_timeout"},
		{"negative read timeout", func(c *redisstate.Config) { c.ReadTimeout = -1 }, "redis.read_timeout"},
		{"negative write timeout", func(c *redisstate.Config) { c.WriteTimeout = -1 }, "redis.write_timeout"},
		{"negative pool size", func(c *redisstate.Config) { c.PoolSize = -1 }, "redis.pool_size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c redisstate.Config
			c.SetDefaults()
			tt.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.field)
			}
		})
	}
}
