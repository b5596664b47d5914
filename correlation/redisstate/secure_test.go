package redisstate_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/correlation/redisstate"
	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/testenv"
)

// The secured deployments that TestConformance passes on refuse a client
// that lacks what they ask for, so that passing proves the TLS and ACL
// settings reach every connection (the sentinels' and each cluster node's).
func TestSecuredDeploymentsRefuseWrongCredentials(t *testing.T) {
	for _, d := range deployments {
		if !strings.HasSuffix(d.name, "+tls+acl") {
			continue
		}
		t.Run(d.name, func(t *testing.T) {
			good := d.config(t)
			cases := []struct {
				name   string
				change func(*redisstate.Config)
				want   string // in the error; "" for success
			}{
				{"as configured", func(*redisstate.Config) {}, ""},
				{"without TLS", func(c *redisstate.Config) { c.TLS.Enable = false }, "EOF"},
				{"without a client certificate", func(c *redisstate.Config) { c.TLS.CertFile, c.TLS.KeyFile = "", "" }, "certificate required"},
				{"wrong password", func(c *redisstate.Config) { c.Password = "wrong" }, "WRONGPASS"},
				{"no user", func(c *redisstate.Config) { c.Username, c.Password = "", "" }, "NOAUTH"},
			}
			if good.MasterName != "" {
				cases = append(cases, struct {
					name   string
					change func(*redisstate.Config)
					want   string
				}{"wrong sentinel password", func(c *redisstate.Config) { c.SentinelPassword = "wrong" }, "WRONGPASS"})
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					cfg := good
					tc.change(&cfg)
					cfg.DialTimeout = time.Second
					rdb, err := redisstate.NewClient(cfg)
					if err != nil {
						t.Fatal(err)
					}
					defer rdb.Close()
					ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
					defer cancel()
					err = rdb.Ping(ctx).Err()
					switch {
					case tc.name == "as configured" && err != nil:
						t.Fatalf("PING with the right settings: %v", err)
					case tc.name != "as configured" && err == nil:
						t.Fatal("PING succeeded")
					case err != nil && !strings.Contains(err.Error(), tc.want):
						t.Fatalf("PING: %v, want an error with %q", err, tc.want)
					}
					if err != nil && cfg.Explain(err) == err {
						t.Errorf("Explain(%v) gives no hint", err)
					}
					t.Logf("refused: %v", cfg.Explain(err))
				})
			}
		})
	}
}

// A deployment configured as another kind fails to join with a hint at
// the setting to change: the mistakes an operator moving between the
// three kinds makes.
func TestWrongDeploymentKindExplained(t *testing.T) {
	single := testenv.RequireRedis(t)
	cluster, sentinel := redistest.Cluster(t), redistest.Sentinel(t)
	for _, tc := range []struct {
		name string
		cfg  redisstate.Config
		hint string
	}{
		{"a cluster node as addr", redisstate.Config{Addr: cluster.Addrs[0]}, "redis.cluster_addrs instead of addr"},
		{"a single server as cluster_addrs", redisstate.Config{ClusterAddrs: []string{single}}, "not part of a Redis Cluster"},
		{"a data node as a sentinel", redisstate.Config{MasterName: sentinel.MasterName, SentinelAddrs: []string{single}}, "must name the sentinels"},
		{"an unknown master name", redisstate.Config{MasterName: "nobody", SentinelAddrs: sentinel.SentinelAddrs}, `named "nobody"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Prefix = "syncgate-test:" + randomHex(t) + ":"
			cfg.SetDefaults()
			rdb, err := redisstate.NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			// Every slot: the id's key must land on another master than
			// the one configured, for MOVED (a third of the ids do not).
			var joinErr error
			for i := range 8 {
				var l *redisstate.Lease
				l, joinErr = redisstate.NewRouter(rdb, cfg).Join(t.Context(), fmt.Sprintf("kind-%d", i), 10*time.Second, time.Second)
				if joinErr != nil {
					break
				}
				_ = l.Close()
			}
			if joinErr == nil {
				t.Fatal("Join succeeded on the wrong kind of deployment")
			}
			if got := cfg.Explain(joinErr).Error(); !strings.Contains(got, tc.hint) {
				t.Fatalf("Explain: %s\nwant a hint with %q", got, tc.hint)
			}
		})
	}
}
