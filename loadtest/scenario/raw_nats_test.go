package scenario

import (
	"net"
	"testing"
	"time"

	natsb "github.com/syncgate/syncgate/brokers/nats"
	"github.com/syncgate/syncgate/internal/testenv"
)

// requireNATS returns the URL of the nats scenario's server once its port
// accepts a connection; otherwise the test fails under CI=true and is
// skipped elsewhere (and under -short, which runs no test that needs a
// server).
func requireNATS(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("this test needs NATS; -short (make check) runs only the tests that need no server, make test runs it")
	}
	c, err := net.DialTimeout("tcp", NATSAddr, 3*time.Second)
	if err != nil {
		testenv.Unavailable(t, "this test needs nats-server at %s (nats-server -a 127.0.0.1 -p 4222 -js): %v", NATSAddr, err)
	}
	_ = c.Close()
	return natsb.DefaultURL
}

// The raw nats.go loop of the nats scenario: 300 requests from 16 callers,
// each answered with its own body and correlation id (the op checks both).
func TestRawNATSLoop(t *testing.T) {
	r, err := newRawNATS(requireNATS(t))
	if err != nil {
		t.Fatal(err)
	}
	driveRawLoop(t, r.op())
	if err := r.close(); err != nil {
		t.Errorf("close: %v", err)
	}
}
