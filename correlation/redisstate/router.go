package redisstate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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
//
// On a Redis Cluster (rdb a *goredis.ClusterClient) forwarding uses sharded
// pub/sub (SPUBLISH, SSUBSCRIBE): a forward reaches only the shard that owns
// the node's channel instead of being broadcast over the cluster bus to
// every node. Elsewhere it uses PUBLISH and SUBSCRIBE.
type Router struct {
	rdb         goredis.UniversalClient
	sharded     bool
	prefix      string
	readTimeout time.Duration
	log         *slog.Logger
}

// NewRouter returns a router on rdb; it uses cfg.Prefix and cfg.Logger
// (defaults applied). The caller owns rdb.
func NewRouter(rdb goredis.UniversalClient, cfg Config) *Router {
	cfg.SetDefaults()
	_, sharded := rdb.(*goredis.ClusterClient)
	return &Router{rdb: rdb, sharded: sharded, prefix: cfg.Prefix, readTimeout: cfg.ReadTimeout, log: cfg.Logger.With(slog.String("component", "redis"))}
}

func (r *Router) ownerKey(id string) string  { return ownerKey(r.prefix, id) }
func (r *Router) channel(node string) string { return nodeChannel(r.prefix, node) }

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
	keys := []string{r.ownerKey(id), resultKey(r.prefix, id)}
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
	n, err := r.publish(ctx, r.channel(node), payload)
	if err != nil {
		return false, unavailable("forward "+rep.CorrelationID+" to "+node, err)
	}
	return n > 0, nil
}

// publish sends payload on channel, sharded on a Redis Cluster, and
// returns how many subscribers received it.
func (r *Router) publish(ctx context.Context, channel string, payload []byte) (int64, error) {
	if r.sharded {
		return r.rdb.SPublish(ctx, channel, payload).Result()
	}
	return r.rdb.Publish(ctx, channel, payload).Result()
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

// ForwardToOwner is Owner then Forward: it publishes rep to the node that
// claimed its id, unless that is from itself. owner is "" (with
// ErrNoOwner) when nobody claimed it; delivered is false when the owner is
// from, or no listener received the reply. One round trip, or two on a
// Redis Cluster, where the owner key and the node's channel live in
// different slots.
func (r *Router) ForwardToOwner(ctx context.Context, from string, rep envelope.Reply) (owner string, delivered bool, err error) {
	payload, err := encodeReply(rep)
	if err != nil {
		return "", false, err
	}
	if r.sharded {
		owner, err := r.Owner(ctx, rep.CorrelationID)
		if err != nil || owner == from {
			return owner, false, err
		}
		n, err := r.publish(ctx, r.channel(owner), payload)
		if err != nil {
			return owner, false, unavailable("forward "+rep.CorrelationID+" to "+owner, err)
		}
		return owner, n > 0, nil
	}
	res, err := forwardScript.Run(ctx, r.rdb, []string{r.ownerKey(rep.CorrelationID)}, nodeChannel(r.prefix, ""), from, payload).Slice()
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
// to node, until ctx ends or the Listener is closed. A notify that a
// record node watches changed (Store.Watch) reaches fn as a reply with
// Progress set and nothing but the correlation id: not a reply to
// deliver, a hint to read the record again. Messages that are not
// replies are counted (Listener.Rejected), logged and dropped. After a lost
// connection, or when the server ends the subscription (on a Redis Cluster,
// the channel's slot moved to another shard), the listener subscribes
// again by itself, with back-off; replies published meanwhile are lost
// (the store has them).
//
// fn must not block for long: replies wait behind it, and Redis drops a
// subscriber whose backlog outgrows client-output-buffer-limit pubsub.
func (r *Router) Listen(ctx context.Context, node string, fn func(envelope.Reply)) (*Listener, error) {
	ch := r.channel(node)
	ps, err := r.subscribe(ctx, ch)
	if err != nil {
		return nil, unavailable("listen "+node, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	l := &Listener{cancel: cancel, done: make(chan struct{})}
	// Receive does not watch ctx; closing the PubSub unblocks it.
	cur := &subscription{ps: ps}
	stop := context.AfterFunc(ctx, cur.close)
	go func() {
		defer close(l.done)
		defer func() {
			stop()
			cur.close() // returns once the PubSub is closed, by whichever call
		}()
		l.run(ctx, r, ch, cur, fn, r.log.With(slog.String("channel", ch)))
	}()
	return l, nil
}

// subscribe subscribes to ch (sharded on a Redis Cluster) and waits, at
// most the read timeout, for the server to confirm it: a server that
// accepts the connection but never answers must not hang the node's start.
func (r *Router) subscribe(ctx context.Context, ch string) (*goredis.PubSub, error) {
	var ps *goredis.PubSub
	kind := "subscribe"
	if r.sharded {
		ps, kind = r.rdb.SSubscribe(ctx, ch), "ssubscribe"
	} else {
		ps = r.rdb.Subscribe(ctx, ch)
	}
	msg, err := ps.ReceiveTimeout(ctx, r.readTimeout)
	if err == nil {
		if sub, ok := msg.(*goredis.Subscription); !ok || sub.Kind != kind || sub.Channel != ch {
			err = fmt.Errorf("unexpected first message %v", msg)
		}
	}
	if err != nil {
		_ = ps.Close()
		return nil, err
	}
	return ps, nil
}

// probePayload is what probe publishes; listeners skip it.
const probePayload = "syncgate:probe"

// notifyPrefix starts what Store.notify publishes: the id follows. A
// listener hands it on as a progress reply without a body (see Listen).
// Not JSON, so that a node of an older version drops it as no reply.
const notifyPrefix = "syncgate:notify:"

// reloadSlots makes a cluster client reload its slot map, which lags
// behind a failover: a subscription on a stale map lands on the old master,
// now a replica. It does nothing on other clients.
func (r *Router) reloadSlots(ctx context.Context) {
	if cc, ok := r.rdb.(*goredis.ClusterClient); ok {
		cc.ReloadState(ctx)
	}
}

// probe checks that ch has a subscriber on the master (of its slot, on a
// Redis Cluster): a publish counts the master's own subscribers only, so a
// subscription left on a node that was demoted to replica by a failover
// (Sentinel or Redis Cluster) counts 0, and so does every forward to it,
// which the forwarding node takes for a node that is gone.
//
// The publish goes where the client routes ch, which is where the
// subscription went: with a slot map (or a connection) that lags behind
// a failover, both are on the demoted master, whose count of its own
// subscriber would pass the probe. onMaster catches that first.
func (r *Router) probe(ctx context.Context, ch string) error {
	if err := r.onMaster(ctx, ch); err != nil {
		return err
	}
	n, err := r.publish(ctx, ch, []byte(probePayload))
	if err != nil {
		return err
	}
	if n == 0 {
		return errNotOnMaster
	}
	return nil
}

// onMaster checks that the node the client sends ch's commands to says it
// is a master (ROLE). A user whose ACL refuses ROLE skips the check: the
// publish's count still catches a subscription on a replica when the
// publish goes to the real master.
func (r *Router) onMaster(ctx context.Context, ch string) error {
	do := r.rdb.Do
	if cc, ok := r.rdb.(*goredis.ClusterClient); ok {
		m, err := cc.MasterForKey(ctx, ch)
		if err != nil {
			return err
		}
		do = m.Do
	}
	role, err := do(ctx, "ROLE").Slice()
	switch {
	case err != nil && strings.HasPrefix(err.Error(), "NOPERM"):
		return nil
	case err != nil:
		return err
	case len(role) == 0 || role[0] != "master":
		return errNotOnMaster
	}
	return nil
}

var errNotOnMaster = errors.New("no subscriber on the master of the channel's slot: subscribed on a replica, or not yet")

// subscription is the Listener's current PubSub, replaced when the server
// ends a subscription, and closed once.
type subscription struct {
	mu     sync.Mutex
	ps     *goredis.PubSub
	closed bool
}

func (s *subscription) get() *goredis.PubSub {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ps
}

func (s *subscription) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		_ = s.ps.Close()
	}
}

// swap makes ps the current PubSub and closes the previous one; false (ps
// closed) when the listener is closing.
func (s *subscription) swap(ps *goredis.PubSub) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = ps.Close()
		return false
	}
	_ = s.ps.Close()
	s.ps = ps
	return true
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

// probeInterval is how often a listener checks that its subscription is on
// the master (see probe): one publish per node and interval.
const probeInterval = time.Second

func (l *Listener) run(ctx context.Context, r *Router, ch string, cur *subscription, fn func(envelope.Reply), log *slog.Logger) {
	backoff := minBackoff
	// failing counts the failed attempts in a row: the first is a
	// warning, the rest of an outage goes to debug (one line per back-off
	// step would flood the log), and the recovery is reported once.
	failing := 0
	failed := func(msg string, err error) {
		failing++
		level := slog.LevelDebug
		if failing == 1 {
			level = slog.LevelWarn
		}
		log.Log(ctx, level, msg, slog.Duration("backoff", backoff), slog.Any("error", err))
	}
	recovered := func() {
		if failing > 0 {
			log.InfoContext(ctx, "redis listener: subscribed again", slog.Int("failed_attempts", failing))
			failing = 0
		}
	}
	pause := func() bool {
		t := time.NewTimer(backoff)
		defer t.Stop()
		backoff = min(2*backoff, maxBackoff)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	// resubscribe replaces the subscription with a new one on the slot's
	// current master; false when the listener is stopping.
	resubscribe := func() bool {
		for {
			r.reloadSlots(ctx)
			if !pause() {
				return false
			}
			ps, err := r.subscribe(ctx, ch)
			if err == nil {
				if err = r.probe(ctx, ch); err == nil {
					backoff = minBackoff
					recovered()
					return cur.swap(ps)
				}
				_ = ps.Close()
			}
			if ctx.Err() != nil {
				return false
			}
			failed("redis listener: subscribing again failed; retrying", err)
		}
	}
	lastProbe := time.Now()
	for {
		// Woken every probeInterval, to probe while nothing arrives.
		msg, err := cur.get().ReceiveTimeout(ctx, probeInterval)
		if ctx.Err() != nil {
			return
		}
		if time.Since(lastProbe) >= probeInterval {
			lastProbe = time.Now()
			if perr := r.probe(ctx, ch); errors.Is(perr, errNotOnMaster) {
				// After a failover the subscription stayed (or the client
				// made it again) on the old master, now a replica: forwards
				// count as undelivered there, and may not arrive.
				log.WarnContext(ctx, "redis listener: not subscribed on the master; subscribing again")
				if !resubscribe() {
					return
				}
				continue
			}
		}
		var timeout interface{ Timeout() bool }
		if err != nil && errors.As(err, &timeout) && timeout.Timeout() {
			continue
		}
		if err != nil && r.sharded {
			// A cluster PubSub reconnects to the node its slot map names,
			// which after a master died is the dead node for as long as
			// nothing reloads the map: reload it, and subscribe anew.
			failed("redis listener: receive failed; subscribing again", err)
			if !resubscribe() {
				return
			}
			continue
		}
		if err != nil {
			// The PubSub reconnects and subscribes again on the next
			// receive; wait first, so a Redis outage is not a busy loop.
			failed("redis listener: receive failed; retrying", err)
			if !pause() {
				return
			}
			continue
		}
		switch m := msg.(type) {
		case *goredis.Message:
			backoff = minBackoff
			recovered()
			if m.Payload == probePayload {
				continue
			}
			if id, ok := strings.CutPrefix(m.Payload, notifyPrefix); ok {
				if id, err := envelope.ValidateID(id); err == nil {
					fn(envelope.Reply{CorrelationID: id, Progress: true})
				}
				continue
			}
			rep, err := decodeReply([]byte(m.Payload))
			if err != nil {
				l.rejected.Add(1)
				log.WarnContext(ctx, "redis listener: dropped a message that is not a reply", slog.Int("bytes", len(m.Payload)), slog.Any("error", err))
				continue
			}
			fn(rep)
		case *goredis.Subscription:
			if m.Count > 0 || m.Kind != "unsubscribe" && m.Kind != "sunsubscribe" {
				continue
			}
			// The server ended the subscription: on a Redis Cluster the
			// slot of the channel moved (a failover, resharding). A new
			// PubSub finds the slot's current owner.
			log.WarnContext(ctx, "redis listener: the server ended the subscription; subscribing again")
			if !resubscribe() {
				return
			}
		}
	}
}
