package redisstate_test

import (
	"context"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation/correlationtest"
	"github.com/syncgate/syncgate/correlation/redisstate"
)

// The Redis router, lease and members pass the same port-level suite as
// correlation.MemoryRouter, on a single server, on Sentinel and on a Redis
// Cluster.
func TestConformance(t *testing.T) {
	onEvery(t, func(t *testing.T, d deployment) {
		correlationtest.Run(t, func(t *testing.T) correlationtest.Cluster {
			rdb, cfg := newClientOn(t, d)
			r := redisstate.NewRouter(rdb, cfg)
			return correlationtest.Cluster{
				Router: r, Store: redisstate.NewStore(rdb, cfg),
				Listen: func(ctx context.Context, node string, fn func(envelope.Reply)) (correlationtest.Listener, error) {
					return r.Listen(ctx, node, fn)
				},
				Join: func(ctx context.Context, node string, ttl, wait time.Duration) (correlationtest.Lease, error) {
					return r.Join(ctx, node, ttl, wait)
				},
			}
		})
	})
}
