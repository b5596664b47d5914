package redisstate_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/correlation/redisstate"
	"github.com/syncgate/syncgate/internal/clienttls"
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
	o, err := c.Options()
	if err != nil || len(o.Addrs) != 1 || o.Addrs[0] != c.Addr || o.ReadTimeout != c.ReadTimeout || c.Mode() != redisstate.ModeSingle {
		t.Fatalf("Options() = %+v, %v; mode %s", o, err, c.Mode())
	}
}

// Each deployment gets the go-redis client of its kind, with the
// credentials and TLS of the data nodes.
func TestConfigModes(t *testing.T) {
	tests := []struct {
		name string
		cfg  redisstate.Config
		mode string
		want string // the client's type
	}{
		{"single", redisstate.Config{Addr: "127.0.0.1:6379"}, redisstate.ModeSingle, "*redis.Client"},
		{"sentinel", redisstate.Config{MasterName: "m", SentinelAddrs: []string{"127.0.0.1:26379"}}, redisstate.ModeSentinel, "*redis.Client"},
		{"cluster", redisstate.Config{ClusterAddrs: []string{"127.0.0.1:7000"}}, redisstate.ModeCluster, "*redis.ClusterClient"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			c.Username, c.Password, c.TLS.Enable = "u", "p", true
			c.SetDefaults()
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if c.Mode() != tt.mode {
				t.Fatalf("Mode() = %s, want %s", c.Mode(), tt.mode)
			}
			o, err := c.Options()
			if err != nil {
				t.Fatal(err)
			}
			if o.Username != "u" || o.Password != "p" || o.TLSConfig == nil {
				t.Fatalf("Options() lost the credentials or TLS: %+v", o)
			}
			rdb, err := redisstate.NewClient(c)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			if got := fmt.Sprintf("%T", rdb); got != tt.want {
				t.Fatalf("NewClient() is a %s, want %s", got, tt.want)
			}
		})
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
		{"addr and cluster", func(c *redisstate.Config) { c.ClusterAddrs = []string{"127.0.0.1:7000"} }, "cluster_addrs"},
		{"addr and sentinel", func(c *redisstate.Config) { c.MasterName = "m" }, "master_name"},
		{"cluster seed without port", func(c *redisstate.Config) { c.Addr, c.ClusterAddrs = "", []string{"a"} }, "redis.cluster_addrs"},
		{"cluster db", func(c *redisstate.Config) { c.Addr, c.ClusterAddrs, c.DB = "", []string{"127.0.0.1:7000"}, 1 }, "redis.db"},
		{"sentinel without master", func(c *redisstate.Config) { c.Addr, c.SentinelAddrs = "", []string{"127.0.0.1:26379"} }, "redis.master_name"},
		{"master without sentinels", func(c *redisstate.Config) { c.Addr, c.MasterName = "", "m" }, "redis.sentinel_addrs"},
		{"sentinel without port", func(c *redisstate.Config) { c.Addr, c.MasterName, c.SentinelAddrs = "", "m", []string{"s"} }, "redis.sentinel_addrs"},
		{"brace in prefix", func(c *redisstate.Config) { c.Prefix = "a{b}:" }, "redis.prefix"},
		{"tls cert without key", func(c *redisstate.Config) { c.TLS = clienttls.Config{Enable: true, CertFile: "c.pem"} }, "redis.tls.cert_file"},
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
