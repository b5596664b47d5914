package redisstate

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/correlation"
)

// A request's callback lives in its result record: cb (the URL), cbr (the
// route), cbu (give up at, Unix ms), cbs (the correlation.DeliveryState),
// cbn (attempts made) and cba (the latest attempts, a JSON array). The
// queue of deliveries due is one sorted set, prefix+"deliveries", scored
// by when each is next due (Unix ms). SetCallback adds it, due when the
// pending record would expire; completeScript marks a waiting callback
// pending and Complete makes it due at once; ClaimDeliveries leases the
// due ones by moving their score past the lease. The queue is one key,
// outside the result's slot, so no script can write both: the entry that
// SetCallback adds is what makes a Redis failure between Complete's script
// and its queueing delay a delivery (to the request's deadline at most)
// rather than lose it. A worker that claims it while the request still
// waits for its reply does nothing (the lease brings it back), and one
// whose record expired takes it off the queue.

func (s *Store) deliveriesKey() string { return s.prefix + "deliveries" }

// setCallbackScript: KEYS[1] result key; ARGV url, route, until (ms).
// It returns {'ok', the record's TTL in ms} or an error string.
var setCallbackScript = goredis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 'not_found' end
if st == 'done' then return 'completed' end
if st == 'cancelled' then return 'cancelled' end
redis.call('HSET', KEYS[1], 'cb', ARGV[1], 'cbr', ARGV[2], 'cbu', ARGV[3], 'cbs', 'waiting', 'cbn', '0')
return {'ok', tostring(redis.call('PTTL', KEYS[1]))}
`)

// SetCallback records cb for the pending request id, with the semantics of
// correlation.MemoryStore.SetCallback, and queues its delivery for when
// the pending record would expire (see the top of this file). An error
// after the callback was recorded leaves it recorded: Complete still
// queues it.
func (s *Store) SetCallback(ctx context.Context, id string, cb correlation.Callback) error {
	v, err := setCallbackScript.Run(ctx, s.rdb, []string{s.key(id)}, cb.URL, cb.Route, cb.Until.UnixMilli()).Result()
	if err != nil {
		return unavailable("callback "+id, err)
	}
	res, rest := scriptResult(v)
	if res != rOK || len(rest) != 1 {
		return scriptErr(res)
	}
	ttl, err := strconv.ParseInt(fmt.Sprint(rest[0]), 10, 64)
	if err != nil || ttl < 0 {
		ttl = 0 // no TTL: look at it at once, as a reply would
	}
	// Within the result's lifetime once done, so that the worker still
	// finds a reply that came just before the deadline.
	due := time.Now().Add(min(time.Duration(ttl)*time.Millisecond, s.resultTTL))
	if err := s.rdb.ZAdd(ctx, s.deliveriesKey(), goredis.Z{Score: float64(due.UnixMilli()), Member: id}).Err(); err != nil {
		return unavailable("queue the callback of "+id, err)
	}
	return nil
}

// claimScript: KEYS[1] the queue; ARGV now (ms), n, lease (ms).
var claimScript = goredis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[3]), id)
end
return ids
`)

// ClaimDeliveries returns up to n ids whose delivery is due at now, each
// leased for lease, for any number of nodes at once: a delivery is
// claimed by one of them, and again once its lease ran out (the node
// died) unless RecordAttempt rescheduled it.
func (s *Store) ClaimDeliveries(ctx context.Context, now time.Time, n int, lease time.Duration) ([]string, error) {
	ids, err := claimScript.Run(ctx, s.rdb, []string{s.deliveriesKey()}, now.UnixMilli(), n, lease.Milliseconds()).StringSlice()
	if err != nil {
		return nil, unavailable("claim deliveries", err)
	}
	return ids, nil
}

// recordScript: KEYS[1] result key; ARGV the attempt (JSON), the state,
// how many attempts to keep.
var recordScript = goredis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'cb') == 0 then return 'not_found' end
local a = {}
local old = redis.call('HGET', KEYS[1], 'cba')
if old then a = cjson.decode(old) end
table.insert(a, cjson.decode(ARGV[1]))
while #a > tonumber(ARGV[3]) do table.remove(a, 1) end
redis.call('HSET', KEYS[1], 'cba', cjson.encode(a), 'cbs', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'cbn', 1)
return 'ok'
`)

// RecordAttempt records attempt a of id's delivery and sets its state,
// with the semantics of correlation.MemoryStore.RecordAttempt.
func (s *Store) RecordAttempt(ctx context.Context, id string, a correlation.Attempt, state correlation.DeliveryState, next time.Time) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	res, err := recordScript.Run(ctx, s.rdb, []string{s.key(id)}, b, string(state), correlation.MaxAttemptsKept).Text()
	if err != nil {
		return unavailable("record attempt "+id, err)
	}
	if res == rOK && state == correlation.DeliveryPending {
		err = s.rdb.ZAdd(ctx, s.deliveriesKey(), goredis.Z{Score: float64(next.UnixMilli()), Member: id}).Err()
	} else {
		err = s.rdb.ZRem(ctx, s.deliveriesKey(), id).Err()
	}
	if err != nil {
		return unavailable("reschedule "+id, err)
	}
	return scriptErr(res)
}

// decodeDelivery reads the callback fields of a record (nil without one).
func decodeDelivery(url, route, until, state, count, attempts string) (*correlation.Delivery, error) {
	if url == "" {
		return nil, nil
	}
	d := &correlation.Delivery{Callback: correlation.Callback{URL: url, Route: route}, State: correlation.DeliveryState(state)}
	if ms, err := strconv.ParseInt(until, 10, 64); err == nil {
		d.Until = time.UnixMilli(ms)
	}
	if count != "" {
		n, err := strconv.Atoi(count)
		if err != nil {
			return nil, fmt.Errorf("cbn %q", count)
		}
		d.Count = n
	}
	// cjson writes an empty array as {}: nothing to read then.
	if attempts != "" && attempts != "{}" {
		if err := json.Unmarshal([]byte(attempts), &d.Attempts); err != nil {
			return nil, fmt.Errorf("cba: %w", err)
		}
	}
	return d, nil
}
