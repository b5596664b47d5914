// Package correlationtest is the port-level conformance suite of cluster
// mode's state: every implementation of the router, the node-id lease and
// the members (correlation.MemoryRouter, redisstate.Router) runs it from
// its own tests, the way every broker backend runs brokers/brokertest:
//
//	func TestConformance(t *testing.T) {
//		correlationtest.Run(t, setup)
//	}
//
// Setup returns a fresh, empty cluster for each subtest. Each property is a
// subtest:
//
//   - Claim: Owner is ErrNoOwner before a claim and after its Release; a
//     release by another node leaves the claim alone; a claim lapses after
//     its TTL.
//   - ClaimPending: the claim plus the very pending record the results
//     store's Pending writes (Get sees it pending, Complete finds it); a
//     second ClaimPending leaves a stored reply alone.
//   - Principal: Pending, ClaimPending and Complete keep the request's
//     principal (any bytes, "" for anonymous) and Get returns it; a second
//     Pending leaves it alone; Cancel by anyone else (anonymous included)
//     is ErrNotFound and leaves the record as it was; an anonymous record
//     is anybody's to cancel.
//   - Forward: a Forward issued after Listen returned is delivered, byte
//     exact, to that node's listener only; a node nobody listens for gets
//     nothing (delivered false, no error); a reply without correlation id
//     is an error; a closed listener gets nothing.
//   - ForwardToOwner: ErrNoOwner when unclaimed; the owner named and
//     delivered false when it does not listen; delivered when it does;
//     nothing published when the owner is the forwarding node.
//   - ListenerStopsWithContext: Done closes once Listen's context ends.
//   - Lease: a second Join of a live id fails with
//     correlation.ErrNodeTaken naming the holder's token; another id is
//     free; after Close the id can be taken again; Err is nil while held.
//   - LeaseAdvertises: an advertised lease lists its node among the members,
//     and lists it again after it was forgotten.
//   - MembersAndAdoption: Register, Members, Live (a lease held), one adopter
//     at a time (the holder refreshes, another is refused), Unadopt only by
//     the holder, AdoptedBy, Forget.
//
// Waits end after 10 s; nothing is synchronised by sleeping.
package correlationtest
