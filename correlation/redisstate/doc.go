// Package redisstate keeps syncgate's cluster state in Redis, so that several
// gateway nodes behind a load balancer act as one: a Store of request results
// that any node can poll (the Redis twin of correlation.MemoryStore), an
// Idempotency store binding Idempotency-Keys with SET NX, and a Router that
// records which node waits for which correlation id and forwards replies to
// that node over pub/sub. A Lease keeps a node id to one live process, and
// the members and adoption keys let a surviving node consume a dead node's
// reply address.
//
// It runs on a single server, on Sentinel or on a Redis Cluster (Config).
// Keys live under Config.Prefix (default "syncgate:") and carry Redis
// Cluster hash tags, so that every script touches one slot (keys.go):
//
//	{prefix}result:{{id}}             hash: state, principal, status, content type, headers (JSON), trace, body
//	{prefix}owner:{{id}}              string: the node waiting for the reply
//	{prefix}idem:{{scope}:{key}}      string: JSON of the correlation.IdempotencyRecord
//	{prefix}node:{node}               pub/sub channel of the node's forwarded replies (sharded on a Redis Cluster)
//	{prefix}{nodes}                   hash: node id → reply address of the members
//	{prefix}{nodes}:lease:{node}      string: the process holding the node id (Join, Lease)
//	{prefix}{nodes}:adopt:{node}      string: the node consuming a dead node's reply address
//
// where {{id}} is the id between literal braces (the hash tag) and {nodes}
// is literal.
//
// The gateway's idempotency scope is the hex SHA-256 of the route and the
// principal (so it holds no ':', and the key is whatever follows it).
//
// Every check-and-set runs as one Lua script or one SET NX, so two nodes
// completing the same id store exactly one reply. Errors caused by Redis
// itself (unreachable, timeouts, protocol) wrap ErrUnavailable, which the
// gateway answers with 503. The package needs Redis 7.0 or later (SET NX GET).
package redisstate
