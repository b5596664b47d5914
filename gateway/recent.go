package gateway

import (
	"hash/maphash"
	"sync"

	"github.com/google/uuid"
)

// DefaultRecentReplies is how many answered correlation ids a gateway
// remembers by default (Config.RecentReplies): about 10 s of replies at
// 10 000 req/s, in a few MB.
const DefaultRecentReplies = 100_000

const recentShards = 64

// recent remembers the correlation ids recently answered on this node (a
// reply delivered to its waiter, stored for polling or forwarded to the
// node holding the request), so that a second reply for one of them is
// told apart from a reply nobody asked for: a duplicate, not an orphan.
// The store already catches duplicates of stored replies; this catches
// those of sync routes, whose reply is never stored.
//
// It is bounded by count, not by time: each of its shards holds two
// generations of ids and drops the older one when the newer is full, so it
// remembers at least the last size/2 ids and at most size (spread over the
// shards by hash). Ids are kept as 16-byte UUIDs, not strings. The shards
// keep the reply path free of one global lock.
type recent struct {
	seed   maphash.Seed
	shards [recentShards]recentShard
}

type recentShard struct {
	mu        sync.Mutex
	cur, prev map[uuid.UUID]struct{}
	limit     int      // per generation
	_         [32]byte // keep hot shard locks on separate cache lines
}

func newRecent(size int) *recent {
	r := &recent{seed: maphash.MakeSeed()}
	limit := max(1, size/2/recentShards)
	for i := range r.shards {
		r.shards[i].limit = limit
	}
	return r
}

func (r *recent) shard(u uuid.UUID) *recentShard {
	return &r.shards[maphash.Bytes(r.seed, u[:])%recentShards]
}

// add remembers id. An id that does not parse (never the case for one
// envelope validated) is ignored.
func (r *recent) add(id string) {
	u, err := uuid.Parse(id)
	if err != nil {
		return
	}
	sh := r.shard(u)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.cur == nil {
		sh.cur = make(map[uuid.UUID]struct{}, min(sh.limit, 1024))
	}
	sh.cur[u] = struct{}{}
	if len(sh.cur) >= sh.limit {
		sh.prev, sh.cur = sh.cur, make(map[uuid.UUID]struct{}, min(sh.limit, 1024))
	}
}

// has reports whether id was answered recently.
func (r *recent) has(id string) bool {
	u, err := uuid.Parse(id)
	if err != nil {
		return false
	}
	sh := r.shard(u)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	_, ok := sh.cur[u]
	if !ok {
		_, ok = sh.prev[u]
	}
	return ok
}
