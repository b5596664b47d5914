package correlationtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/correlation/correlationtest"
)

// An implementation runs the suite from its own test file; Setup returns a
// fresh cluster state, and adapts Listen and Join to the suite's types.
func ExampleRun() {
	testConformance := func(t *testing.T) {
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
	_ = testConformance // func TestConformance(t *testing.T) { ... } in a real _test.go
}
