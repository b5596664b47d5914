package redisstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
)

// A result record is a hash with the fields state (pending, done,
// cancelled), principal (who made the request; absent or "" when
// anonymous) and, once done, status, content_type, header (JSON object),
// traceparent, tracestate and body. Only the scripts below write it. A
// record written before principal existed reads as anonymous.

// Script results, mapped to the correlation sentinels.
const (
	rOK        = "ok"
	rNotFound  = "not_found"
	rCompleted = "completed"
	rCancelled = "cancelled"
)

// pendingScript: KEYS[1] result key; ARGV[1] TTL in ms, ARGV[2] principal.
// A record that exists (pending, done or cancelled) is left alone: a reply
// that landed before the 202 was recorded is never hidden.
var pendingScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'pending', 'principal', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`)

// completeScript: KEYS[1] result key; ARGV: result TTL in ms, status,
// content type, header JSON, traceparent, tracestate, body. The first reply
// wins; an expired key is gone for Redis, so it reads as not_found.
var completeScript = goredis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 'not_found' end
if st == 'done' then return 'completed' end
if st == 'cancelled' then return 'cancelled' end
redis.call('HSET', KEYS[1], 'state', 'done', 'status', ARGV[2], 'content_type', ARGV[3],
  'header', ARGV[4], 'traceparent', ARGV[5], 'tracestate', ARGV[6], 'body', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local cb = ''
local f = redis.call('HMGET', KEYS[1], 'cbs', 'watched')
if f[1] == 'waiting' then
  redis.call('HSET', KEYS[1], 'cbs', 'pending')
  cb = '1'
end
local watched = f[2]
` + watchersLua + `
table.insert(w, 2, cb)
return w
`)

// watchersLua sets w to {'ok', the nodes watching KEYS[1]...}: the fields
// w:<node> that Watch wrote, when watched (the field of that name) is
// set.
const watchersLua = `
local w = {'ok'}
if watched then
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(f, 1, 2) == 'w:' then w[#w + 1] = string.sub(f, 3) end
  end
end`

// watchScript: KEYS[1] result key; ARGV[1] node. The node streams the
// record's events: a node that stores one notifies it (Store.notify).
var watchScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'watched', '1', 'w:' .. ARGV[1], '1')
return 1
`)

// cancelScript: KEYS[1] result key; ARGV[1] result TTL in ms, ARGV[2] the
// principal cancelling. A record another principal made is not_found
// (correlation.Result.VisibleTo), read in the same step as the state.
// Cancelling a cancelled record is a no-op and keeps its expiry.
var cancelScript = goredis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'state', 'principal')
local st, p = v[1], v[2] or ''
if not st then return 'not_found' end
if p ~= '' and p ~= ARGV[2] then return 'not_found' end
if st == 'done' then return 'completed' end
if st == 'cancelled' then return 'ok' end
redis.call('HSET', KEYS[1], 'state', 'cancelled')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 'ok'
`)

// getScript reads the fields and the remaining TTL in one step, so Expires
// belongs to the record that was read; then the progress sequence number
// and the progress messages after ARGV[1] (-1: the latest only), as
// sequence number, message pairs.
var getScript = goredis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'state', 'status', 'content_type', 'header', 'traceparent', 'tracestate', 'body', 'principal',
  'pseq', 'cb', 'cbr', 'cbu', 'cbs', 'cbn', 'cba', 'parts', 'parent')
v[18] = redis.call('PTTL', KEYS[1])
local n = tonumber(v[9] or '0')
local from = tonumber(ARGV[1]) + 1
if from <= 0 then from = n end
if from < n - ` + keepProgress + ` + 1 then from = n - ` + keepProgress + ` + 1 end
for i = math.max(from, 1), n do
  local p = redis.call('HGET', KEYS[1], 'p:' .. i)
  if p then
    v[#v + 1] = i
    v[#v + 1] = p
  end
end
return v
`)

// getFields is how many values getScript returns before the progress
// pairs: 17 fields and the TTL.
const getFields = 18

// keepProgress is correlation.MaxProgressKept, for the scripts.
var keepProgress = strconv.Itoa(correlation.MaxProgressKept)

// progressScript: KEYS[1] result key; ARGV[1] the message (content type,
// newline, body). It keeps the latest MaxProgressKept messages as fields
// p:<seq> and returns the new sequence number, or the record's end.
var progressScript = goredis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 'not_found' end
if st == 'done' then return 'completed' end
if st == 'cancelled' then return 'cancelled' end
local n = redis.call('HINCRBY', KEYS[1], 'pseq', 1)
redis.call('HSET', KEYS[1], 'p:' .. n, ARGV[1])
if n > ` + keepProgress + ` then redis.call('HDEL', KEYS[1], 'p:' .. (n - ` + keepProgress + `)) end
local watched = redis.call('HGET', KEYS[1], 'watched')
` + watchersLua + `
w[1] = tostring(n)
return w
`)

// Store keeps the results of accepted requests in Redis, so that every node
// serves the poll. It implements gateway.Store with the semantics of
// correlation.MemoryStore; records expire through Redis TTLs, so there is no
// size cap (Redis' maxmemory policy is the cap). Safe for concurrent use,
// from any number of processes.
type Store struct {
	rdb       goredis.UniversalClient
	prefix    string
	resultTTL time.Duration
	sharded   bool // a Redis Cluster: notifies go by SPUBLISH
}

// NewStore returns a store on rdb; it uses cfg.Prefix and cfg.ResultTTL
// (defaults applied). The caller owns rdb and closes it.
func NewStore(rdb goredis.UniversalClient, cfg Config) *Store {
	cfg.SetDefaults()
	_, sharded := rdb.(*goredis.ClusterClient)
	return &Store{rdb: rdb, prefix: cfg.Prefix, resultTTL: cfg.ResultTTL, sharded: sharded}
}

// Watch records that node streams the events of the request id (while
// its record lives): Complete and Progress then notify node, on the
// channel its Router listens on, that the record changed. A no-op when
// there is no record.
func (s *Store) Watch(ctx context.Context, id, node string) error {
	if err := watchScript.Run(ctx, s.rdb, []string{s.key(id)}, node).Err(); err != nil {
		return unavailable("watch "+id, err)
	}
	return nil
}

// notify tells the nodes watching id that its record changed, best
// effort: a node that misses it reads the record again later by itself;
// with queue, it queues the delivery of id's callback. One pipelined
// round trip, and none without watchers or callback.
func (s *Store) notify(ctx context.Context, id string, watchers []any, queue bool) {
	if len(watchers) == 0 && !queue {
		return
	}
	payload := notifyPrefix + id
	_, _ = s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		if queue {
			p.ZAdd(ctx, s.deliveriesKey(), goredis.Z{Score: float64(time.Now().UnixMilli()), Member: id})
		}
		for _, w := range watchers {
			node, _ := w.(string)
			if s.sharded {
				p.SPublish(ctx, nodeChannel(s.prefix, node), payload)
			} else {
				p.Publish(ctx, nodeChannel(s.prefix, node), payload)
			}
		}
		return nil
	})
}

// scriptResult reads what a script that ends a step returns: an error
// string, or {result, watchers...}.
func scriptResult(v any) (string, []any) {
	switch v := v.(type) {
	case string:
		return v, nil
	case []any:
		if len(v) > 0 {
			first, _ := v[0].(string)
			return first, v[1:]
		}
	}
	return fmt.Sprint(v), nil
}

func (s *Store) key(id string) string { return resultKey(s.prefix, id) }

// Pending records that id was accepted for principal ("" when anonymous)
// and may be polled for ttl. It is a no-op when a record exists, and when
// ttl is not positive (the record would be expired at once).
func (s *Store) Pending(ctx context.Context, id, principal string, ttl time.Duration) error {
	if ttl <= 0 {
		return nil
	}
	if err := pendingScript.Run(ctx, s.rdb, []string{s.key(id)}, ms(ttl), principal).Err(); err != nil {
		return unavailable("pending "+id, err)
	}
	return nil
}

// Complete stores rep for a pending request and keeps it for the result
// TTL. It returns correlation.ErrNotFound when no live record exists,
// correlation.ErrCompleted when a reply is stored already (the first one
// wins) and correlation.ErrCancelled when the request was cancelled.
func (s *Store) Complete(ctx context.Context, rep envelope.Reply) error {
	id := rep.CorrelationID
	hdr, err := encodeHeader(rep.Header)
	if err != nil {
		return fmt.Errorf("redis: complete %s: %w", id, err)
	}
	v, err := completeScript.Run(ctx, s.rdb, []string{s.key(id)}, ms(s.resultTTL),
		strconv.Itoa(rep.Status), rep.ContentType, hdr, rep.TraceParent, rep.TraceState, rep.Body).Result()
	if err != nil {
		return unavailable("complete "+id, err)
	}
	res, rest := scriptResult(v)
	if res == rOK && len(rest) > 0 {
		// rest: the callback flag, then the watchers.
		s.notify(ctx, id, rest[1:], rest[0] == "1")
	}
	return scriptErr(res)
}

// Cancel marks a pending request cancelled for principal, for the result
// TTL: a later Complete fails with correlation.ErrCancelled. It returns
// correlation.ErrNotFound when no live record exists or it is not
// VisibleTo principal, and correlation.ErrCompleted when the reply is
// stored already. Cancelling a cancelled request is a no-op.
func (s *Store) Cancel(ctx context.Context, id, principal string) error {
	res, err := cancelScript.Run(ctx, s.rdb, []string{s.key(id)}, ms(s.resultTTL), principal).Text()
	if err != nil {
		return unavailable("cancel "+id, err)
	}
	return scriptErr(res)
}

// OutlivesProcess reports true: the records are in Redis, so any node can
// serve a poll after the one that answered 202 is gone.
func (s *Store) OutlivesProcess() bool { return true }

// Progress keeps a progress message for the pending request id, with the
// semantics of correlation.MemoryStore.Progress (Redis' maxmemory is the
// only bound on room).
func (s *Store) Progress(ctx context.Context, id string, p correlation.Progress) (int, error) {
	v, err := progressScript.Run(ctx, s.rdb, []string{s.key(id)}, p.ContentType+"\n"+string(p.Body)).Result()
	if err != nil {
		return 0, unavailable("progress "+id, err)
	}
	res, watchers := scriptResult(v)
	if n, err := strconv.Atoi(res); err == nil {
		s.notify(ctx, id, watchers, false)
		return n, nil
	}
	return 0, scriptErr(res)
}

// Get returns the record for id, with its latest progress message, or
// correlation.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (correlation.Result, error) {
	return s.get(ctx, id, -1)
}

// Events returns the record for id with the progress messages kept after
// sequence number after, or correlation.ErrNotFound.
func (s *Store) Events(ctx context.Context, id string, after int) (correlation.Result, error) {
	return s.get(ctx, id, max(after, 0))
}

func (s *Store) get(ctx context.Context, id string, after int) (correlation.Result, error) {
	now := time.Now()
	v, err := getScript.Run(ctx, s.rdb, []string{s.key(id)}, after).Slice()
	if err != nil {
		return correlation.Result{}, unavailable("get "+id, err)
	}
	if len(v) < getFields || len(v)%2 != 0 {
		return correlation.Result{}, unavailable("get "+id, fmt.Errorf("script returned %d values, want %d and pairs", len(v), getFields))
	}
	if v[0] == nil {
		return correlation.Result{}, correlation.ErrNotFound
	}
	str := func(i int) string { s, _ := v[i].(string); return s }
	res := correlation.Result{Principal: str(7)}
	if pttl, ok := v[17].(int64); ok && pttl > 0 {
		res.Expires = now.Add(time.Duration(pttl) * time.Millisecond)
	}
	if ps := str(8); ps != "" {
		if res.Seq, err = strconv.Atoi(ps); err != nil {
			return correlation.Result{}, fmt.Errorf("redis: get %s: pseq: %w", id, err)
		}
	}
	if res.Delivery, err = decodeDelivery(str(9), str(10), str(11), str(12), str(13), str(14)); err != nil {
		return correlation.Result{}, fmt.Errorf("redis: get %s: callback: %w", id, err)
	}
	if ps := str(15); ps != "" {
		res.Gather = new(correlation.Gathering)
		if err := json.Unmarshal([]byte(ps), res.Gather); err != nil {
			return correlation.Result{}, fmt.Errorf("redis: get %s: parts: %w", id, err)
		}
	}
	res.Parent = str(16)
	for i := getFields; i < len(v); i += 2 {
		seq, _ := v[i].(int64)
		ct, body, _ := strings.Cut(str(i+1), "\n")
		p := correlation.Progress{Seq: int(seq), ContentType: ct}
		if body != "" {
			p.Body = []byte(body)
		}
		res.Progress = append(res.Progress, p)
	}
	switch str(0) {
	case "pending":
		res.State = correlation.StatePending
		return res, nil
	case "cancelled":
		res.State = correlation.StateCancelled
		return res, nil
	case "done":
		res.State = correlation.StateDone
	default:
		return correlation.Result{}, fmt.Errorf("redis: get %s: unknown state %q", id, str(0))
	}
	status, err := strconv.Atoi(str(1))
	if err != nil {
		return correlation.Result{}, fmt.Errorf("redis: get %s: status: %w", id, err)
	}
	hdr, err := decodeHeader(str(3))
	if err != nil {
		return correlation.Result{}, fmt.Errorf("redis: get %s: %w", id, err)
	}
	res.Reply = envelope.Reply{
		CorrelationID: id, Status: status, ContentType: str(2), Header: hdr,
		TraceParent: str(4), TraceState: str(5),
	}
	if b := str(6); b != "" {
		res.Reply.Body = []byte(b)
	}
	return res, nil
}

// Delete removes the record for id, if any.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := s.rdb.Del(ctx, s.key(id)).Err(); err != nil {
		return unavailable("delete "+id, err)
	}
	return nil
}

func scriptErr(res string) error {
	switch res {
	case rOK:
		return nil
	case rNotFound:
		return correlation.ErrNotFound
	case rCompleted:
		return correlation.ErrCompleted
	case rCancelled:
		return correlation.ErrCancelled
	}
	return unavailable("script", fmt.Errorf("unexpected result %q", res))
}

// encodeHeader stores no headers as "" and reads "" back as nil.
func encodeHeader(h map[string]string) (string, error) {
	if len(h) == 0 {
		return "", nil
	}
	b, err := json.Marshal(h)
	return string(b), err
}

func decodeHeader(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	var h map[string]string
	if err := json.Unmarshal([]byte(s), &h); err != nil {
		return nil, errors.New("header: " + err.Error())
	}
	return h, nil
}
