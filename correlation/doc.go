// Package correlation matches replies to the requests that wait for them.
//
// NewID makes the correlation ids (UUIDv7: unique, time-ordered). A Registry
// holds one one-shot channel per waiting request, sharded so that tens of
// thousands of waiters do not contend on one lock. Deliver hands a reply to
// its waiter without ever blocking, and it sends under the shard lock in the
// same critical section that removes the entry: a reply arriving at the
// moment its waiter gives up is either received by the waiter (Cancel returns
// it) or reported as undelivered so the caller can store it. It is never lost.
//
// A Store keeps results for requests nobody waits for any more (202 Accepted,
// then polling); MemoryStore is the in-process implementation, bounded in
// entries, bytes and time. An accepted request is a promise, so it never
// evicts a live record: when full it refuses new ones (ErrFull), and Run
// reclaims the expired ones in the background.
//
// A MemoryRouter is cluster mode's state for nodes that share one process:
// which node waits for which id, forwarding of replies to it, node-id
// leases, members and adoptions. correlation/redisstate holds the same
// state in Redis for nodes in several processes; both pass the port-level
// suite in correlation/correlationtest.
package correlation
