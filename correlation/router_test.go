package correlation_test

import (
	"context"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/correlation/correlationtest"
)

func TestMemoryRouterConformance(t *testing.T) {
	correlationtest.Run(t, func(t *testing.T) correlationtest.Cluster {
		store := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
		r := correlation.NewMemoryRouter(store)
		return correlationtest.Cluster{
			Router: r, Store: store,
			Listen: func(ctx context.Context, node string, fn func(envelope.Reply)) (correlationtest.Listener, error) {
				return r.Listen(ctx, node, fn)
			},
			Join: func(ctx context.Context, node string, ttl, wait time.Duration) (correlationtest.Lease, error) {
				return r.Join(ctx, node, ttl, wait)
			},
		}
	})
}
