package redisstate_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/correlation/redisstate"
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
