package nats_test

import (
	"testing"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/brokertest"
	"github.com/syncgate/syncgate/brokers/nats"
	"github.com/syncgate/syncgate/internal/testenv"
)

// TestConformance runs the shared suite on the real server in both modes.
//
// core: NoConsumerCrashRedelivery, since core NATS keeps nothing: a
// message whose subscription stops while handling it is published back to
// the subject, but a group with no member left loses it. A handler error is
// retried in place (in order, MaxDeliveries attempts), so the redelivery
// and dead-letter properties hold.
//
// jetstream: NoOrderPerKey, since a nakked message is redelivered after its
// delay while the messages behind it go on (as with RabbitMQ's quorum
// queues). Without failures one subscription with concurrency 1 consumes
// its stream in order (TestOrderWithoutFailures checks that).
//
// In both, MaxDeliveries is the configured max_deliveries, and Unreachable
// is a Client whose server vanished (a relay torn down).
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		features brokertest.Features
	}{
		{nats.ModeCore, brokertest.Features{NoConsumerCrashRedelivery: true}},
		{nats.ModeJetStream, brokertest.Features{NoOrderPerKey: true}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cfg := testConfig(t, tc.mode)
			cfg.MaxDeliveries = 3 // the DeadLetter subtest fails a message this often
			a := newAdmin(t)
			f := tc.features
			f.MaxDeliveries = cfg.MaxDeliveries
			f.Destination = func(t *testing.T) string {
				subject := unique("sgtest.dest.")
				t.Cleanup(func() { a.deleteStreams(cfg.StreamName(subject)) })
				return subject
			}
			f.Unreachable = func(t *testing.T) brokers.Publisher {
				p := testenv.NewRelay(t, natsURL())
				cfg := cfg
				cfg.URL = p.URL(t, natsURL())
				c, err := nats.Dial(cfg)
				if err != nil {
					t.Fatalf("Dial through the relay: %v", err)
				}
				t.Cleanup(func() { _ = c.Close() })
				p.Kill()
				// Core NATS has no acknowledgement: a publish before the
				// client noticed the loss is written to a dead socket.
				testenv.Eventually(t, 5e9, "the client noticing the relay is gone", func() bool { return !c.Ready() })
				return c
			}
			brokertest.Run(t, func(t *testing.T) (brokers.Publisher, brokers.Subscriber) {
				c, err := nats.Dial(cfg)
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				return c, c
			}, f)
		})
	}
}
