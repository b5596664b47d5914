package kafka

import (
	"net"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/brokertest"
)

// conformanceMaxDeliveries is max_deliveries in TestConformance, whose
// retry backoffs are kept short so the DeadLetter subtest is quick.
const conformanceMaxDeliveries = 3

// TestConformance runs the shared broker suite against one cluster.
func TestConformance(t *testing.T) {
	c := newCluster(t)
	setup := func(t *testing.T) (brokers.Publisher, brokers.Subscriber) {
		cfg := c.config()
		cfg.MaxDeliveries = conformanceMaxDeliveries
		cfg.RetryBackoffMin, cfg.RetryBackoffMax = time.Millisecond, 20*time.Millisecond
		cfg.Logger = testLogger()
		p, err := NewPublisher(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSubscriber(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return p, s
	}
	brokertest.Run(t, setup, brokertest.Features{
		Destination:   func(t *testing.T) string { return c.topic(t, "brokertest", 4) },
		Timeout:       15 * time.Second,
		MaxDeliveries: conformanceMaxDeliveries,
		Unreachable: func(t *testing.T) brokers.Publisher {
			p, err := NewPublisher(Config{Brokers: []string{closedPort(t)}, Logger: testLogger()})
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
	})
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}
