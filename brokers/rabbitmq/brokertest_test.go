package rabbitmq_test

import (
	"context"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/brokertest"
	"github.com/syncgate/syncgate/brokers/rabbitmq"
	"github.com/syncgate/syncgate/internal/testenv"
)

// TestConformance runs the shared suite on the real server, with the default
// exchange and with a configured one (where groups are queues of their own).
//
// NoOrderPerKey: quorum queues (needed for the broker-counted delivery
// limit) put a nacked message back at the tail of the queue, so the next
// message of its key overtakes its redelivery. Without failures a
// subscription with concurrency 1 sees its queue in order.
//
// MaxDeliveries: the quorum queue's x-delivery-limit, or the attempts the
// subscription counts on a classic queue; the DeadLetter callback is
// called on the last failed one.
//
// classic-transient is the latency profile: classic work queues (the
// subscription counts attempts), transient requests and replies.
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		withExchange, classic bool
	}{
		{"default-exchange", false, false},
		{"exchange", true, false},
		{"classic-transient", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.MaxDeliveries = 3 // the DeadLetter subtest fails a message this often
			if tc.classic {
				cfg.QueueType = rabbitmq.QueueTypeClassic
				cfg.TransientRequests, cfg.TransientReplies = true, true
			}
			if tc.withExchange {
				cfg.Exchange = unique("sgtest.ex")
				a := newAdmin(t)
				t.Cleanup(func() { a.deleteExchange(cfg.Exchange) })
			}
			brokertest.Run(t, func(t *testing.T) (brokers.Publisher, brokers.Subscriber) {
				c, err := rabbitmq.Dial(cfg)
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				return c, groupCleaner{c, t}
			}, brokertest.Features{
				Destination: func(t *testing.T) string {
					q := unique("brokertest")
					cleanupQueue(t, q)
					return q
				},
				NoOrderPerKey: true,
				MaxDeliveries: cfg.MaxDeliveries,
				Unreachable: func(t *testing.T) brokers.Publisher {
					// A client whose broker vanished: connected through a
					// relay that is then torn down.
					p := testenv.NewRelay(t, testenv.RabbitMQURL())
					cfg := cfg
					cfg.URL = p.URL(t, testenv.RabbitMQURL())
					c, err := rabbitmq.Dial(cfg)
					if err != nil {
						t.Fatalf("Dial through the relay: %v", err)
					}
					t.Cleanup(func() { _ = c.Close() })
					p.Kill()
					return c
				},
			})
		})
	}
}

// groupCleaner deletes the queues that groups create when an exchange is
// configured.
type groupCleaner struct {
	*rabbitmq.Client
	t *testing.T
}

func (g groupCleaner) Subscribe(ctx context.Context, source string, h brokers.Handler, opts ...brokers.SubscribeOption) error {
	if sc := brokers.NewSubscribeConfig(opts...); sc.Group != "" {
		a := newAdmin(g.t)
		g.t.Cleanup(func() {
			// Let the subscription stop first (its cleanup ran before this one
			// only if it was registered later), then delete.
			deadline := time.Now().Add(10 * time.Second)
			for a.messages(sc.Group) >= 0 && time.Now().Before(deadline) {
				a.deleteQueue(sc.Group)
			}
		})
	}
	return g.Client.Subscribe(ctx, source, h, opts...)
}
