// Package gateway is syncgate's use case: turn one request into a message,
// wait for the reply that carries its correlation id, and fall back to
// 202 Accepted (or 504 on routes whose callers cannot poll) when the reply
// does not come within the wait budget.
//
// It knows nothing of HTTP or of any broker SDK: it publishes through a
// Publisher, waits through a correlation.Registry, and parks late replies in
// a Store that any node can serve polls from. DispatchReply is the other half:
// the node's reply consumer hands every reply message to it. A reply that
// breaks the wire contract but names a known request answers it with a 502
// invalid-reply problem at once (envelope.FailureReply), and a bounded
// memory of recently answered ids tells a second reply (a duplicate) from
// one nobody asked for (an orphan).
//
// In cluster mode (Config.Cluster) several gateways share a Router and a
// Store: a waited-for request is claimed for this node before it is
// published, and a reply consumed by a node that does not hold its request
// is stored (pollable routes) and forwarded to the node that does. An
// Adopter consumes the reply addresses of dead members (Membership) until
// they are back or none of their requests can still wait. The cluster
// state has an in-memory implementation (correlation.MemoryRouter) beside
// the Redis one (correlation/redisstate); cluster.go and adopt.go hold
// cluster mode's logic, tested on the in-memory one. Do, dispatch and long
// polls take one path either way: what differs is behind placement
// (placement.go), chosen once by New.
//
// A request that may need a record in the Store (async, auto, keyed) is
// refused with ErrStoreFull before it is published when a bounded store
// (correlation.MemoryStore) is full: an accepted request is a promise, so
// no record is evicted to make room, and the record of an auto request
// admitted earlier is never refused when its wait runs out. Sync routes
// need no record and are never refused for it.
//
// Around that core: an Idempotency-Key binds retries to the first request
// with the key (IdempotencyStore; one message published, one answer for
// all), Await is the long poll that wakes on the reply, and Cancel discards
// a late reply. Metrics are not kept here: package instrument decorates
// the ports and counts what they return (DispatchReply's outcomes among
// them); the gateway keeps only the counters its own decisions need
// (ForwardCounts, ClusterErrors).
package gateway
