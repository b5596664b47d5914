package redisstate

// Keys are laid out for Redis Cluster (see the package doc): the keys one
// script touches share a hash tag, so they live in one slot.
//
//   - A request's result and owner keys carry its id as their tag: the
//     script that claims a request and writes its pending record touches
//     both, and requests spread over the slots.
//   - The membership keys (members, leases, adoptions) share the tag
//     {nodes}: a lease refresh re-registers its node among the members in
//     the same script. They are few and written every lease_ttl/3 per node.
//   - An Idempotency-Key's tag is its scope and key, so that braces in a
//     client's key cannot gather many keys into one slot.
//
// Config.Validate refuses a Prefix holding a brace, which would move the
// tags.

// membersTag is the hash tag (and the name) of the members hash.
const membersTag = "{nodes}"

func resultKey(prefix, id string) string { return prefix + "result:{" + id + "}" }
func ownerKey(prefix, id string) string  { return prefix + "owner:{" + id + "}" }

// nodeChannel is node's pub/sub channel: forwarded replies and notifies.
func nodeChannel(prefix, node string) string { return prefix + "node:" + node }
