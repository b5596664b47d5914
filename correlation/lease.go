package correlation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNodeTaken: another live process holds the node id (see
// MemoryRouter.Join and redisstate.Router.Join).
var ErrNodeTaken = errors.New("correlation: node id is held by another live process")

// leaseRecord is the holder of a node id, as the lease key holds it in Redis.
type leaseRecord struct {
	token   string
	expires time.Time
}

// MemoryLease holds a node id in a MemoryRouter: Join takes it, a goroutine
// refreshes it every TTL/3, Close gives it back.
type MemoryLease struct {
	r       *MemoryRouter
	node    string
	token   string
	ttl     time.Duration
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
	lost    atomic.Bool
	replyTo atomic.Pointer[string]
}

// Join takes node's id, so that two live nodes never share one id. It
// fails with ErrNodeTaken when a live lease holds it. (In process every
// lease is refreshed until Close, so unlike in Redis there is no lapsing
// holder to wait for: wait only bounds the wait for one that is expiring.)
func (r *MemoryRouter) Join(ctx context.Context, node string, ttl, wait time.Duration) (*MemoryLease, error) {
	if ttl < 3*time.Millisecond {
		return nil, fmt.Errorf("correlation: join %s: lease TTL %v is too short", node, ttl)
	}
	l := &MemoryLease{r: r, node: node, token: memoryToken(), ttl: ttl, done: make(chan struct{})}
	deadline := time.Now().Add(wait)
	for {
		now := time.Now()
		r.mu.Lock()
		rec := r.leases[node]
		if rec == nil || !now.Before(rec.expires) {
			r.leases[node] = &leaseRecord{token: l.token, expires: now.Add(ttl)}
			r.mu.Unlock()
			break
		}
		holder, expires := rec.token, rec.expires
		r.mu.Unlock()
		left := expires.Sub(now)
		if expires.After(deadline) {
			return nil, fmt.Errorf("%w: node %q is held by %s for %v more", ErrNodeTaken, node, holder, left.Round(time.Millisecond))
		}
		t := time.NewTimer(max(left, time.Millisecond))
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

func memoryToken() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "memory/" + hex.EncodeToString(b)
}

// Advertise keeps the node listed among the members (Register) with
// replyTo for as long as the lease is held, re-registering it at every
// refresh.
func (l *MemoryLease) Advertise(replyTo string) { l.replyTo.Store(&replyTo) }

func (l *MemoryLease) refresh(ctx context.Context) {
	defer close(l.done)
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		r := l.r
		r.mu.Lock()
		rec := r.leases[l.node]
		switch {
		case rec != nil && rec.token == l.token:
			rec.expires = now.Add(l.ttl)
			l.lost.Store(false)
		case rec == nil || !now.Before(rec.expires):
			r.leases[l.node] = &leaseRecord{token: l.token, expires: now.Add(l.ttl)}
			l.lost.Store(false)
		default:
			l.lost.Store(true) // another lease took the id; not taken back
		}
		if p := l.replyTo.Load(); p != nil && !l.lost.Load() {
			r.members[l.node] = *p
		}
		r.mu.Unlock()
	}
}

// Err is nil while the lease is held, ErrNodeTaken when another lease took
// the id.
func (l *MemoryLease) Err() error {
	if l.lost.Load() {
		return fmt.Errorf("%w: node %q", ErrNodeTaken, l.node)
	}
	return nil
}

// Token identifies this lease.
func (l *MemoryLease) Token() string { return l.token }

// Close stops refreshing and releases the id if this lease still holds it.
// It is idempotent.
func (l *MemoryLease) Close() error {
	l.once.Do(func() {
		l.cancel()
		<-l.done
		l.r.mu.Lock()
		if rec := l.r.leases[l.node]; rec != nil && rec.token == l.token {
			delete(l.r.leases, l.node)
		}
		l.r.mu.Unlock()
	})
	return nil
}

// Register records node's reply address among the members.
func (r *MemoryRouter) Register(_ context.Context, node, replyTo string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.members[node] = replyTo
	return nil
}

// Members returns every registered node and its reply address.
func (r *MemoryRouter) Members(context.Context) (map[string]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.members), nil
}

// Forget removes node from the members (its adoption is over).
func (r *MemoryRouter) Forget(_ context.Context, node string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.members, node)
	return nil
}

// Live reports whether a lease holds node's id.
func (r *MemoryRouter) Live(_ context.Context, node string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.leases[node]
	return rec != nil && time.Now().Before(rec.expires), nil
}

// Adopt makes by the one node that consumes dead node's reply address, for
// ttl; by calls it again to keep it. false: another node adopted it.
func (r *MemoryRouter) Adopt(_ context.Context, node, by string, ttl time.Duration) (bool, error) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := r.adoptions[node]; ok && h.live(now) && h.by != by {
		return false, nil
	}
	r.adoptions[node] = holder{by: by, expires: now.Add(ttl)}
	return true, nil
}

// AdoptedBy returns the node that adopted node's reply address, or "".
func (r *MemoryRouter) AdoptedBy(_ context.Context, node string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := r.adoptions[node]; ok && h.live(time.Now()) {
		return h.by, nil
	}
	delete(r.adoptions, node)
	return "", nil
}

// Unadopt gives up by's adoption of node, if by holds it.
func (r *MemoryRouter) Unadopt(_ context.Context, node, by string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := r.adoptions[node]; ok && h.by == by {
		delete(r.adoptions, node)
	}
	return nil
}
