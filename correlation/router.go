package correlation

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
)

// MemoryRouter is the cluster state of gateway nodes that share one process:
// which node waits for which correlation id (claims), forwarding of replies
// to that node, the node-id leases, the members and their adoptions. It is
// the in-process twin of redisstate.Router, with the same semantics (the
// port-level suite in correlation/correlationtest holds both to them), so
// that cluster logic can be tested without Redis, and a single node can be a
// cluster of one. Every node of the cluster uses the same MemoryRouter, as
// every node uses the same Redis. Its zero value is not usable: call
// NewMemoryRouter.
type MemoryRouter struct {
	results *MemoryStore

	mu        sync.Mutex
	owners    map[string]holder // correlation id → claiming node
	listeners map[string]map[*MemoryListener]struct{}
	leases    map[string]*leaseRecord
	members   map[string]string // node → reply address
	adoptions map[string]holder // dead node → adopting node
}

// holder is a key with a value and an expiry, as Redis keeps them.
type holder struct {
	by      string
	expires time.Time
}

func (h holder) live(now time.Time) bool { return now.Before(h.expires) }

// NewMemoryRouter returns a router whose ClaimPending writes its pending
// records into results, the store the nodes share.
func NewMemoryRouter(results *MemoryStore) *MemoryRouter {
	return &MemoryRouter{
		results: results, owners: make(map[string]holder), listeners: make(map[string]map[*MemoryListener]struct{}),
		leases: make(map[string]*leaseRecord), members: make(map[string]string), adoptions: make(map[string]holder),
	}
}

// Claim records that node waits for id, for ttl (the request's budget plus
// a margin). A later claim replaces an earlier one.
func (r *MemoryRouter) Claim(_ context.Context, id, node string, ttl time.Duration) error {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.owners[id] = holder{by: node, expires: now.Add(max(ttl, time.Millisecond))}
	// Amortised clean-up of lapsed claims: nobody sweeps this map.
	n := 0
	for k, h := range r.owners {
		if n++; n > 2 {
			break
		}
		if !h.live(now) {
			delete(r.owners, k)
		}
	}
	return nil
}

// ClaimPending is Claim plus the results store's Pending(id, principal,
// pendingTTL): what a node does before publishing a request of a pollable
// route. The claim is made even when the store refuses the record (full).
func (r *MemoryRouter) ClaimPending(ctx context.Context, id, node, principal string, ttl, pendingTTL time.Duration) error {
	if err := r.Claim(ctx, id, node, ttl); err != nil {
		return err
	}
	return r.results.Pending(ctx, id, principal, max(pendingTTL, time.Millisecond))
}

// Owner returns the node that claimed id, or ErrNoOwner.
func (r *MemoryRouter) Owner(_ context.Context, id string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.owner(id, time.Now())
}

func (r *MemoryRouter) owner(id string, now time.Time) (string, error) {
	h, ok := r.owners[id]
	if !ok || !h.live(now) {
		delete(r.owners, id)
		return "", ErrNoOwner
	}
	return h.by, nil
}

// Release drops node's claim on id; a claim held by another node is left
// alone.
func (r *MemoryRouter) Release(_ context.Context, id, node string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := r.owners[id]; ok && h.by == node {
		delete(r.owners, id)
	}
	return nil
}

var errNoID = errors.New("correlation: forward: reply without correlation id")

// Forward hands rep to node's listeners. delivered is false when none took
// it (the node is not listening, or its listener is too far behind): the
// caller then keeps the reply for polling. Delivery is at most once.
func (r *MemoryRouter) Forward(_ context.Context, node string, rep envelope.Reply) (delivered bool, err error) {
	if rep.CorrelationID == "" {
		return false, errNoID
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.forward(node, rep), nil
}

// forward runs under r.mu, so that a listener's Close cannot race the send.
func (r *MemoryRouter) forward(node string, rep envelope.Reply) bool {
	delivered := false
	for l := range r.listeners[node] {
		// The receiver gets its own copy, as it would off the wire.
		c := rep
		c.Header = maps.Clone(rep.Header)
		c.Body = slices.Clone(rep.Body)
		select {
		case l.ch <- c:
			delivered = true
		default: // too far behind: dropped, as Redis drops a slow subscriber's backlog
		}
	}
	return delivered
}

// ForwardToOwner is Owner then Forward in one step: it hands rep to the
// node that claimed its id, unless that is from itself. owner is "" (with
// ErrNoOwner) when nobody claimed it; delivered is false when the owner is
// from, or no listener took the reply.
func (r *MemoryRouter) ForwardToOwner(_ context.Context, from string, rep envelope.Reply) (owner string, delivered bool, err error) {
	if rep.CorrelationID == "" {
		return "", false, errNoID
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	owner, err = r.owner(rep.CorrelationID, time.Now())
	if err != nil {
		return "", false, err
	}
	if owner == from {
		return owner, false, nil
	}
	return owner, r.forward(owner, rep), nil
}

// listenerBuffer is how many forwarded replies a listener may be behind
// before further ones are dropped (not delivered).
const listenerBuffer = 4096

// Listen registers a listener of node's forwarded replies and returns at
// once: a Forward issued after Listen returns reaches fn. A goroutine calls
// fn, one reply at a time, until ctx ends or the listener is closed. fn
// must not block for long: replies wait behind it.
func (r *MemoryRouter) Listen(ctx context.Context, node string, fn func(envelope.Reply)) (*MemoryListener, error) {
	ctx, cancel := context.WithCancel(ctx)
	l := &MemoryListener{ch: make(chan envelope.Reply, listenerBuffer), cancel: cancel, done: make(chan struct{})}
	r.mu.Lock()
	if r.listeners[node] == nil {
		r.listeners[node] = make(map[*MemoryListener]struct{})
	}
	r.listeners[node][l] = struct{}{}
	r.mu.Unlock()
	go func() {
		defer close(l.done)
		defer func() {
			r.mu.Lock()
			delete(r.listeners[node], l)
			if len(r.listeners[node]) == 0 {
				delete(r.listeners, node)
			}
			r.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case rep := <-l.ch:
				if ctx.Err() != nil {
					return
				}
				fn(rep)
			}
		}
	}()
	return l, nil
}

// MemoryListener is one node's subscription, started by MemoryRouter.Listen.
type MemoryListener struct {
	ch     chan envelope.Reply
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Close stops the listener and returns once its goroutine has exited; no
// Forward reaches it after that. It is idempotent.
func (l *MemoryListener) Close() error {
	l.once.Do(l.cancel)
	<-l.done
	return nil
}

// Done is closed when the listener has stopped.
func (l *MemoryListener) Done() <-chan struct{} { return l.done }
