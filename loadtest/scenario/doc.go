// Package scenario holds syncgate's standard load scenarios: each starts
// what it measures on 127.0.0.1 (the gateway node and the demo service, or
// a plain HTTP server for the floor), drives it with package loadtest, and
// returns a Report whose comparisons are ratios against a floor measured in
// the same run, because the machines these run on are noisy.
//
// Scenarios: direct (the floor: plain HTTP to the demo echo logic), memory,
// kafka and rabbitmq (the gateway over each broker, against the floor, the
// memory broker and raw SDK request/reply loops on the same broker; over
// rabbitmq also in the latency profile, classic queues and transient
// messages; with the ceiling the shared CPUs put on the gateway's ratio to
// a raw loop),
// auto-poll (an auto route over a slow service: 202, then polling until the
// result is there) and many-waiters (10 000 requests held open on a slow
// route while a second client measures a fast route, and the memory each
// waiting request costs).
package scenario
