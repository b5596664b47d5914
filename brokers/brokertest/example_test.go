package brokertest_test

import (
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/brokertest"
	"github.com/syncgate/syncgate/brokers/memory"
)

// A backend runs the suite from its own test file. Setup connects a fresh
// publisher and subscriber; Features says what the backend cannot do.
func ExampleRun() {
	testConformance := func(t *testing.T) {
		setup := func(t *testing.T) (brokers.Publisher, brokers.Subscriber) {
			b := memory.New(memory.Config{})
			return b, b // one object; the suite closes it twice, Close is idempotent
		}
		brokertest.Run(t, setup, brokertest.Features{
			Timeout: 5 * time.Second,
			// A networked backend also sets Destination (to create topics
			// with enough partitions) and Unreachable.
		})
	}
	_ = testConformance // func TestConformance(t *testing.T) { ... } in a real _test.go
}
