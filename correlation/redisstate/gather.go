package redisstate

import (
	"context"
	"encoding/json"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/correlation"
)

// setPartsScript: KEYS[1] the parent's result key; ARGV[1] its parts
// (JSON). Only a pending record takes them.
var setPartsScript = goredis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 'not_found' end
if st == 'done' then return 'completed' end
if st == 'cancelled' then return 'cancelled' end
redis.call('HSET', KEYS[1], 'parts', ARGV[1])
return 'ok'
`)

// setParentScript: KEYS[1] a part's result key; ARGV[1] the parent's id.
// A part without a record (not written, or expired) is left alone.
var setParentScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'parent', ARGV[1])
return 1
`)

// SetParts records g on the pending record of parent (the field parts,
// JSON), and parent on the record of each of its parts that has one (the
// field parent), with the semantics of correlation.MemoryStore.SetParts.
// The parts' keys hash to their own slots, so the links are written after
// the parent's record, in one pipelined round trip (EVAL, not EVALSHA: a pipeline cannot
// retry NOSCRIPT): a part's reply stored
// before its link is written is found by the next read of the parent.
func (s *Store) SetParts(ctx context.Context, parent string, g correlation.Gathering) error {
	b, err := json.Marshal(g)
	if err != nil {
		return fmt.Errorf("redis: set parts of %s: %w", parent, err)
	}
	res, err := setPartsScript.Run(ctx, s.rdb, []string{s.key(parent)}, b).Text()
	if err != nil {
		return unavailable("set parts of "+parent, err)
	}
	if err := scriptErr(res); err != nil {
		return err
	}
	_, err = s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, part := range g.Parts {
			setParentScript.Eval(ctx, p, []string{s.key(part.ID)}, parent)
		}
		return nil
	})
	if err != nil {
		return unavailable("link the parts of "+parent, err)
	}
	return nil
}
