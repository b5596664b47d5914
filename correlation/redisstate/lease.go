package redisstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/correlation"
)

// ErrNodeTaken: another live process holds the node id. It is
// correlation.ErrNodeTaken.
var ErrNodeTaken = correlation.ErrNodeTaken

// refreshScript: KEYS[1] lease key; ARGV[1] token, ARGV[2] TTL in ms.
// 1: refreshed; 2: re-taken (the key was gone, e.g. Redis restarted
// without persistence); 0: another process holds it.
// KEYS[2] members hash; ARGV[3] node, ARGV[4] reply address ("": none):
// a held lease also keeps the node listed among the members, which a Redis
// restarted without persistence has forgotten.
var refreshScript = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
local res = 0
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) res = 1
elseif not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) res = 2 end
if res > 0 and ARGV[4] ~= '' then redis.call('HSET', KEYS[2], ARGV[3], ARGV[4]) end
return res
`)

// Lease holds a node id for a live process: Join takes it, a goroutine
// refreshes it every TTL/3, Close gives it back. A process that dies keeps
// the id for at most the TTL.
type Lease struct {
	r      *Router
	node   string
	key    string
	token  string
	ttl    time.Duration
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	lost   atomic.Bool
	// replyTo, when set, is re-registered among the members at every
	// refresh (see Advertise).
	replyTo atomic.Pointer[string]
}

// Advertise keeps node listed among the members (Register) with replyTo
// for as long as the lease is held, re-registering it at every refresh.
func (l *Lease) Advertise(replyTo string) { l.replyTo.Store(&replyTo) }

func (r *Router) leaseKey(node string) string { return r.prefix + membersTag + ":lease:" + node }

// Join takes node's id for this process, so that two live nodes never
// share one id (their replies and claims would mix). It fails with
// ErrNodeTaken when a live process holds it; a process that stopped
// without Close holds it until ttl passes, so Join waits up to wait for
// that before failing. The returned Lease is refreshed until Close.
func (r *Router) Join(ctx context.Context, node string, ttl, wait time.Duration) (*Lease, error) {
	if ttl < 3*time.Millisecond {
		return nil, fmt.Errorf("redis: join %s: lease TTL %v is too short", node, ttl)
	}
	l := &Lease{r: r, node: node, key: r.leaseKey(node), token: leaseToken(), ttl: ttl, done: make(chan struct{})}
	deadline := time.Now().Add(wait)
	// A live holder refreshes its lease every TTL/3, so its expiry moves
	// later; a dead one's only comes nearer. Looking every TTL/2 tells them
	// apart without waiting out a live holder's whole lease.
	var lastHolder string
	var lastExpiry time.Time
	for {
		ok, err := r.rdb.SetNX(ctx, l.key, l.token, ttl).Result()
		if err != nil {
			return nil, unavailable("join "+node, err)
		}
		if ok {
			break
		}
		holder, _ := r.rdb.Get(ctx, l.key).Result()
		left, _ := r.rdb.PTTL(ctx, l.key).Result()
		expiry := time.Now().Add(left)
		refreshed := holder != "" && holder == lastHolder && expiry.After(lastExpiry.Add(ttl/10))
		lastHolder, lastExpiry = holder, expiry
		if refreshed || expiry.After(deadline) || left <= 0 && time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: node %q is held by %s for %v more (another node with this id is running, or one stopped without releasing it)",
				ErrNodeTaken, node, holder, left.Round(time.Millisecond))
		}
		r.log.WarnContext(ctx, "node id is held; waiting for its lease to lapse",
			slog.String("holder", holder), slog.Duration("left", left))
		t := time.NewTimer(max(min(left, ttl/2), 10*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = cancel
	go l.refresh(rctx)
	return l, nil
}

func leaseToken() string {
	host, _ := os.Hostname()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/pid-%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

func (l *Lease) refresh(ctx context.Context) {
	defer close(l.done)
	log := l.r.log.With(slog.String("node", l.node))
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		replyTo := ""
		if p := l.replyTo.Load(); p != nil {
			replyTo = *p
		}
		res, err := refreshScript.Run(ctx, l.r.rdb, []string{l.key, l.r.membersKey()}, l.token, ms(l.ttl), l.node, replyTo).Int()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.WarnContext(ctx, "node lease: refresh failed; retrying", slog.Any("error", err))
		case res == 0:
			if !l.lost.Swap(true) {
				log.ErrorContext(ctx, "node lease: another process took this node id; this node's replies may be routed to it")
			}
		default:
			if l.lost.Swap(false) || res == 2 {
				log.InfoContext(ctx, "node lease: taken again")
			}
		}
	}
}

// Err is nil while the lease is held, ErrNodeTaken when another process
// took the id (after this one could not refresh it in time).
func (l *Lease) Err() error {
	if l.lost.Load() {
		return fmt.Errorf("%w: node %q", ErrNodeTaken, l.node)
	}
	return nil
}

// Token identifies this process in the lease (host, pid, random).
func (l *Lease) Token() string { return l.token }

// Close stops refreshing and releases the id if this process still holds
// it. It is idempotent.
func (l *Lease) Close() error {
	var err error
	l.once.Do(func() {
		l.cancel()
		<-l.done
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if e := releaseScript.Run(ctx, l.r.rdb, []string{l.key}, l.token).Err(); e != nil {
			err = unavailable("leave "+l.node, e)
		}
	})
	return err
}
