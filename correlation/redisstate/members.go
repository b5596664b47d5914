package redisstate

import (
	"context"
	"errors"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Members and adoption: every node records its reply address when it
// joins, so that when it dies another node can consume what is still
// addressed to it (the replies to its requests in flight) until it comes
// back or nothing more can matter.

func (r *Router) membersKey() string          { return r.prefix + membersTag }
func (r *Router) adoptKey(node string) string { return r.prefix + membersTag + ":adopt:" + node }

// adoptScript: KEYS[1] adopt key; ARGV[1] adopter, ARGV[2] TTL in ms.
// Takes the adoption, or refreshes it if the adopter holds it already.
var adoptScript = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
`)

// Register records node's reply address among the members.
func (r *Router) Register(ctx context.Context, node, replyTo string) error {
	if err := r.rdb.HSet(ctx, r.membersKey(), node, replyTo).Err(); err != nil {
		return unavailable("register "+node, err)
	}
	return nil
}

// Members returns every registered node and its reply address.
func (r *Router) Members(ctx context.Context) (map[string]string, error) {
	m, err := r.rdb.HGetAll(ctx, r.membersKey()).Result()
	if err != nil {
		return nil, unavailable("members", err)
	}
	return m, nil
}

// Forget removes node from the members (its adoption is over).
func (r *Router) Forget(ctx context.Context, node string) error {
	if err := r.rdb.HDel(ctx, r.membersKey(), node).Err(); err != nil {
		return unavailable("forget "+node, err)
	}
	return nil
}

// Live reports whether a process holds node's lease.
func (r *Router) Live(ctx context.Context, node string) (bool, error) {
	n, err := r.rdb.Exists(ctx, r.leaseKey(node)).Result()
	if err != nil {
		return false, unavailable("live "+node, err)
	}
	return n == 1, nil
}

// Adopt makes by the one node that consumes dead node's reply address, for
// ttl; by calls it again to keep it. false: another node adopted it.
func (r *Router) Adopt(ctx context.Context, node, by string, ttl time.Duration) (bool, error) {
	n, err := adoptScript.Run(ctx, r.rdb, []string{r.adoptKey(node)}, by, ms(ttl)).Int()
	if err != nil {
		return false, unavailable("adopt "+node, err)
	}
	return n == 1, nil
}

// AdoptedBy returns the node that adopted node's reply address, or "".
func (r *Router) AdoptedBy(ctx context.Context, node string) (string, error) {
	by, err := r.rdb.Get(ctx, r.adoptKey(node)).Result()
	switch {
	case errors.Is(err, goredis.Nil):
		return "", nil
	case err != nil:
		return "", unavailable("adopted by "+node, err)
	}
	return by, nil
}

// Unadopt gives up by's adoption of node, if by holds it.
func (r *Router) Unadopt(ctx context.Context, node, by string) error {
	err := releaseScript.Run(ctx, r.rdb, []string{r.adoptKey(node)}, by).Err()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return unavailable("unadopt "+node, err)
	}
	return nil
}
