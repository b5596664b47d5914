// Package brokertest is the conformance suite every syncgate broker backend
// runs from its own tests. A backend is done when Run passes for it under
// go test -race:
//
//	func TestConformance(t *testing.T) {
//		brokertest.Run(t, setup, brokertest.Features{Destination: newTopic})
//	}
//
// Each property is a subtest, run one after another on fresh destinations
// and consumer groups:
//
//   - RoundTrip: a message published after Ready reaches the handler.
//   - Payloads: key, headers (32 of them, unicode, an empty value, 4 KiB
//     values) and bodies (all 256 byte values, nil, empty, one NUL, 1 MiB)
//     arrive byte-exact. A nil and an empty body are equal.
//   - Envelope: an envelope.Request with every field (the principal and a
//     forwarded HTTP header of the same name among them) decodes on the
//     consumer's side to the request that was published.
//   - PublishCopiesMessage: the caller may reuse body and headers once
//     Publish returned.
//   - OrderPerKey: 200 messages over 4 keys, one subscription with
//     concurrency 1, arrive in publish order per key (not NoOrderPerKey).
//   - RedeliveryAfterHandlerError: a message whose handler failed comes again,
//     unaltered by what the failed attempt did to its copy, not again once
//     handled, and before the next message of its key (not NoOrderPerKey).
//   - RedeliveryAfterConsumerCrash: a consumer acknowledges m1 and stops (its
//     context ends; the handler returns the context's error) while holding
//     m2. A new subscription of the same group, on a second connection from
//     Setup, gets m2 and then a new m3, never m1. The group must therefore
//     outlive its consumers (not NoConsumerCrashRedelivery).
//   - CompetingConsumers: two subscriptions of one group (WithGroup) on one
//     Subscriber share 100 messages: each handled once, both handle some.
//   - ConcurrentPublishers: 8 goroutines publish 100 messages each, all are
//     delivered once.
//   - Concurrency: WithConcurrency(4) runs 4 handlers at once (64 messages
//     with distinct keys, so backends that shard by key can), never more.
//   - Ready: called exactly once, and a message published after it is
//     delivered. Every subscription the suite makes checks this.
//   - Cancellation: when its context ends, Subscribe cancels the running
//     handler's context and returns nil; with an ended context it returns
//     at once (nil or context.Canceled).
//   - PublishCancelledContext: Publish with an ended context returns an error.
//   - Close: Subscriber.Close cancels running handlers, returns after they
//     did, and makes Subscribe return (nil or brokers.ErrClosed); Close is
//     idempotent (nil every time); Publish and Subscribe afterwards return
//     errors wrapping brokers.ErrClosed.
//   - Unreachable: Publish to a broker that does not answer fails, wrapping
//     brokers.ErrUnavailable, within its 1s deadline plus 2s of slack (only
//     with Features.Unreachable).
//
// Delivery is at-least-once, but where a subtest injects no failure it
// requires each message exactly once: a duplicate fails it. Every message the
// suite publishes carries the header "brokertest-id"; backends may add headers
// of their own, the suite only requires the ones it sent. Handlers never
// block without a bound, waits end after Features.Timeout and nothing is
// synchronised by sleeping, so a fast backend passes in well under a second
// and a slow or loaded machine only makes it slower. (One 50ms window in
// Concurrency is a probe for surplus handlers, not a synchronisation.)
package brokertest
