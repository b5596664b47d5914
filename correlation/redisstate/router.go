package redisstate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
)

// ErrNoOwner: no node has claimed the correlation id (never claimed,
// released, or the claim expired). It is correlation.ErrNoOwner.
var ErrNoOwner = correlation.ErrNoOwner

// releaseScript deletes the claim only if node still holds it, so a node
// never drops a claim another node took over.
var releaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Router records which node waits for which correlation id and forwards
// replies to that node over pub/sub. Pub/sub is at-most-once: a reply for a
// pollable route is stored (Store.Complete) before it is forwarded.
type Router struct {
	rdb         goredis.UniversalClient
	prefix      string
	readTimeout time.Duration
	log         *slog.Logger
}

// NewRouter returns a router on rdb; it uses cfg.Prefix and cfg.Logger
// (defaults applied). The caller owns rdb.
func NewRouter(rdb goredis.UniversalClient, cfg Config) *Router {
	cfg.SetDefaults()
	return &Router{rdb: rdb, prefix: cfg.Prefix, readTimeout: cfg.ReadTimeout, log: cfg.Logger.With(slog.String("component", "redis"))}
}

func (r *Router) ownerKey(id string) string  { return r.prefix + "owner:" + id }
func (r *Router) channel(node string) string { return r.prefix + "node:" + node }

// Claim records that node waits for id, for ttl (the request's budget plus
// a margin). A later claim replaces an earlier one.
func (r *Router) Claim(ctx context.Context, id, node string, ttl time.Duration) error {
	if err := r.rdb.Set(ctx, r.ownerKey(id), node, max(ttl, time.Millisecond)).Err(); err != nil {
		return unavailable("claim "+id, err)
	}
	return nil
}

// claimPendingScript: KEYS[1] owner key, KEYS[2] result key; ARGV[1]
// node, ARGV[2] claim TTL in ms, ARGV[3] pending TTL in ms, ARGV[4] the
// request's principal. The pending record is written as pendingScript
// writes it (left alone if one exists).
var claimPendingScript = goredis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[2], 'state', 'pending', 'principal', ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return 1
`)

// ClaimPending is Claim plus Store.Pending(id, principal, "", pendingTTL) of a
// Store on the same client and prefix, in one round trip: what a node does
// before publishing a request of a pollable route.
func (r *Router) ClaimPending(ctx context.Context, id, node, principal string, ttl, pendingTTL time.Duration) error {
	keys := []string{r.ownerKey(id), r.prefix + "result:" + id}
	if err := claimPendingScript.Run(ctx, r.rdb, keys, node, ms(max(ttl, time.Millisecond)), ms(max(pendingTTL, time.Millisecond)), principal).Err(); err != nil {
		return unavailable("claim "+id, err)
	}
	return nil
}

// Owner returns the node that claimed id, or ErrNoOwner.
func (r *Router) Owner(ctx context.Context, id string) (string, error) {
	node, err := r.rdb.Get(ctx, r.ownerKey(id)).Result()
	switch {
	case errors.Is(err, goredis.Nil):
		return "", ErrNoOwner
	case err != nil:
		return "", unavailable("owner "+id, err)
	}
	return node, nil
}

// Release drops node's claim on id (its wait is over); a claim held by
// another node is left alone.
func (r *Router) Release(ctx context.Context, id, node string) error {
	if err := releaseScript.Run(ctx, r.rdb, []string{r.ownerKey(id)}, node).Err(); err != nil {
		return unavailable("release "+id, err)
	}
	return nil
}

// Forward publishes rep on node's channel. delivered is false when no
// listener received it (the node is gone or not listening): the caller then
// keeps the reply for polling. Delivery to a listener is still at most once.
func (r *Router) Forward(ctx context.Context, node string, rep envelope.Reply) (delivered bool, err error) {
	payload, err := encodeReply(rep)
	if err != nil {
		return false, err
	}
	n, err := r.rdb.Publish(ctx, r.channel(node), payload).Result()
	if err != nil {
		return false, unavailable("forward "+rep.CorrelationID+" to "+node, err)
	}
	return n > 0, nil
}

// forwardScript: KEYS[1] owner key; ARGV[1] channel prefix, ARGV[2] the
// forwarding node, ARGV[3] payload. Returns {owner, receivers}: owner ""
// when none, receivers -1 when nothing was published (no owner, or the
// owner is the forwarding node itself).
var forwardScript = goredis.NewScript(`
local owner = redis.call('GET', KEYS[1])
if not owner then return {'', -1} end
if owner == ARGV[2] then return {owner, -1} end
return {owner, redis.call('PUBLISH', ARGV[1] .. owner, ARGV[3])}
`)

// ForwardToOwner is Owner then Forward in one round trip: it publishes rep
// to the node that claimed its id, unless that is from itself. owner is ""
// (with ErrNoOwner) when nobody claimed it; delivered is false when the
// owner is from, or no listener received the reply.
func (r *Router) ForwardToOwner(ctx context.Context, from string, rep envelope.Reply) (owner string, delivered bool, err error) {
	payload, err := encodeReply(rep)
	if err != nil {
		return "", false, err
	}
	res, err := forwardScript.Run(ctx, r.rdb, []string{r.ownerKey(rep.CorrelationID)}, r.prefix+"node:", from, payload).Slice()
	if err != nil {
		return "", false, unavailable("forward "+rep.CorrelationID, err)
	}
	if len(res) != 2 {
		return "", false, unavailable("forward "+rep.CorrelationID, fmt.Errorf("unexpected script result %v", res))
	}
	owner, _ = res[0].(string)
	n, _ := res[1].(int64)
	if owner == "" {
		return "", false, ErrNoOwner
	}
	return owner, n > 0, nil
}

// Listen subscribes to node's channel and returns once Redis has confirmed
// the subscription, so a Forward issued after Listen returns reaches fn. A
// goroutine then calls fn, one reply at a time, for every reply forwarded
// to node, until ctx ends or the Listener is closed. Messages that are not
// replies are counted (Listener.Rejected), logged and dropped. After a lost
// connection the listener reconnects and resubscribes by itself, with
// back-off; replies published meanwhile are lost (the store has them).
//
// fn must not block for long: replies wait behind it, and Redis drops a
// subscriber whose backlog outgrows client-output-buffer-limit pubsub.
func (r *Router) Listen(ctx context.Context, node string, fn func(envelope.Reply)) (*Listener, error) {
	ch := r.channel(node)
	ps := r.rdb.Subscribe(ctx, ch)
	// Bounded: a server that accepts the connection but never answers must
	// not hang the node's start.
	msg, err := ps.ReceiveTimeout(ctx, r.readTimeout)
	if err == nil {
		if sub, ok := msg.(*goredis.Subscription); !ok || sub.Kind != "subscribe" || sub.Channel != ch {
			err = errors.New("unexpected first message")
		}
	}
	if err != nil {
		_ = ps.Close()
		return nil, unavailable("listen "+node, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	l := &Listener{cancel: cancel, done: make(chan struct{})}
	// ReceiveMessage does not watch ctx; closing the PubSub unblocks it.
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = ps.Close()
		close(closed)
	})
	go func() {
		defer close(l.done)
		defer func() {
			if stop() {
				_ = ps.Close() // run returned before ctx ended
			} else {
				<-closed // the AfterFunc is closing it: wait, so Close proves it
			}
		}()
		l.run(ctx, ps, fn, r.log.With(slog.String("node", node)))
	}()
	return l, nil
}

// Listener is one node's subscription, started by Router.Listen.
type Listener struct {
	cancel   context.CancelFunc
	done     chan struct{}
	once     sync.Once
	rejected atomic.Uint64
}

// Close stops the listener and returns once its goroutine has exited. It is
// idempotent.
func (l *Listener) Close() error {
	l.once.Do(l.cancel)
	<-l.done
	return nil
}

// Done is closed when the listener has stopped.
func (l *Listener) Done() <-chan struct{} { return l.done }

// Rejected counts the messages dropped because they were not replies.
func (l *Listener) Rejected() uint64 { return l.rejected.Load() }

const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 500 * time.Millisecond
)

func (l *Listener) run(ctx context.Context, ps *goredis.PubSub, fn func(envelope.Reply), log *slog.Logger) {
	backoff := minBackoff
	for {
		msg, err := ps.ReceiveMessage(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// The PubSub reconnects on the next receive; wait first, so a
			// Redis outage is not a busy loop.
			log.WarnContext(ctx, "redis listener: receive failed; retrying", slog.Duration("backoff", backoff), slog.Any("error", err))
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		rep, err := decodeReply([]byte(msg.Payload))
		if err != nil {
			l.rejected.Add(1)
			log.WarnContext(ctx, "redis listener: dropped a message that is not a reply", slog.Int("bytes", len(msg.Payload)), slog.Any("error", err))
			continue
		}
		fn(rep)
	}
}
