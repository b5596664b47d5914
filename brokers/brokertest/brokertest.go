package brokertest

import (
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
)

// Setup returns a fresh publisher and subscriber connected to the backend
// under test. They may be one object. The suite closes both (t.Cleanup).
//
// Run may call Setup more than once with the same t (a consumer that takes
// over from a stopped one uses a new connection); every pair returned for one
// t must reach the same broker. An in-process backend therefore returns
// clients of one broker per t.
type Setup func(t *testing.T) (brokers.Publisher, brokers.Subscriber)

// Features describes what the backend under test can do; the zero value
// claims everything and leaves out only the unreachable-broker check.
type Features struct {
	// Destination returns a fresh unique destination ready for use (Kafka:
	// a topic created with at least 4 partitions). nil: the suite makes a
	// random name "brokertest.<test>.<random>" and relies on the backend
	// creating it on first use.
	Destination func(t *testing.T) string
	// NoOrderPerKey: the backend cannot keep per-key order (one
	// subscription, concurrency 1, also around a redelivery).
	NoOrderPerKey bool
	// NoConsumerCrashRedelivery: the backend cannot redeliver a message
	// whose consumer stopped before acknowledging it.
	NoConsumerCrashRedelivery bool
	// NoKey: the backend does not carry Message.Key through to the handler
	// (it may still route by it). The key checks are skipped.
	NoKey bool
	// Timeout is the longest wait for an expected event: a delivery,
	// Ready, Subscribe returning, Close returning (default 10s).
	Timeout time.Duration
	// MaxDeliveries is how many times the backend, as set up, hands a
	// message whose handler keeps failing to the handler before it gives up
	// on it (dead-letters it and calls SubscribeConfig.DeadLetter). 0: the
	// backend never gives up (it retries forever); that subtest is skipped.
	MaxDeliveries int
	// Unreachable, when set, returns a Publisher pointed at a broker that
	// does not answer; Publish must fail, wrapping brokers.ErrUnavailable,
	// within its context's deadline instead of hanging. nil: that subtest
	// is skipped.
	Unreachable func(t *testing.T) brokers.Publisher
}

// DefaultTimeout is Features.Timeout when it is zero.
const DefaultTimeout = 10 * time.Second

// Run runs the conformance suite against the backend that setup connects to.
func Run(t *testing.T, setup Setup, f Features) {
	t.Helper()
	if f.Timeout <= 0 {
		f.Timeout = DefaultTimeout
	}
	s := &suite{setup: setup, f: f}
	for _, tc := range []struct {
		name string
		test func(*testing.T)
	}{
		{"RoundTrip", s.testRoundTrip},
		{"Payloads", s.testPayloads},
		{"Envelope", s.testEnvelope},
		{"PublishCopiesMessage", s.testPublishCopiesMessage},
		{"OrderPerKey", s.testOrderPerKey},
		{"RedeliveryAfterHandlerError", s.testRedeliveryAfterHandlerError},
		{"RedeliveryAfterConsumerCrash", s.testRedeliveryAfterConsumerCrash},
		{"DeadLetter", s.testDeadLetter},
		{"CompetingConsumers", s.testCompetingConsumers},
		{"ConcurrentPublishers", s.testConcurrentPublishers},
		{"Concurrency", s.testConcurrency},
		{"Ready", s.testReady},
		{"Cancellation", s.testCancellation},
		{"PublishCancelledContext", s.testPublishCancelledContext},
		{"Close", s.testClose},
		{"Unreachable", s.testUnreachable},
	} {
		t.Run(tc.name, tc.test)
	}
}

type suite struct {
	setup Setup
	f     Features
}
