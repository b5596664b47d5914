package correlation

import (
	"errors"
	"hash/maphash"
	"sync"

	"github.com/syncgate/syncgate/brokers/envelope"
)

var (
	// ErrDuplicate is returned by Register when the id is already waiting.
	ErrDuplicate = errors.New("correlation: id already registered")
	// ErrClosed is returned by Register after Close.
	ErrClosed = errors.New("correlation: registry closed")
)

const shardCount = 64

// Registry maps correlation ids to waiting requests. The zero value is not
// usable; call NewRegistry. All methods are safe for concurrent use.
type Registry struct {
	seed   maphash.Seed
	shards [shardCount]shard
}

type shard struct {
	mu      sync.Mutex
	waiters map[string]*Waiter
	closed  bool
	_       [40]byte // keep hot shard locks on separate cache lines
}

// Waiter is one registered request. Its channel receives at most one reply;
// it is closed without a value when the registry closes.
type Waiter struct {
	id string
	ch chan envelope.Reply
	sh *shard
	// held is what HoldProgress kept for the id: the latest progress
	// message while the request waits, every message (up to
	// MaxProgressKept) once its record is being written (QueueProgress).
	// noHold is set once the waiter takes no more. All are guarded by sh.mu.
	held   []envelope.Reply
	taking bool
	noHold bool
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].waiters = make(map[string]*Waiter)
	}
	return r
}

func (r *Registry) shard(id string) *shard {
	return &r.shards[maphash.String(r.seed, id)%shardCount]
}

// Register adds a waiter for id. The caller must call Cancel on every path
// once it stops waiting; Cancel is what removes the entry.
func (r *Registry) Register(id string) (*Waiter, error) {
	sh := r.shard(id)
	w := &Waiter{id: id, ch: make(chan envelope.Reply, 1), sh: sh}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.closed {
		return nil, ErrClosed
	}
	if _, ok := sh.waiters[id]; ok {
		return nil, ErrDuplicate
	}
	sh.waiters[id] = w
	return w, nil
}

// Deliver hands rep to the waiter registered under rep.CorrelationID and
// removes it. It never blocks. It returns false when nobody waits for the id
// (unknown, already answered, timed out or cancelled); the caller then stores
// the reply or counts it as an orphan.
func (r *Registry) Deliver(rep envelope.Reply) bool {
	sh := r.shard(rep.CorrelationID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	w, ok := sh.waiters[rep.CorrelationID]
	if !ok {
		return false
	}
	delete(sh.waiters, rep.CorrelationID)
	// The channel has capacity 1 and only this critical section sends on it,
	// once, so the send cannot block. Sending before unlocking is what closes
	// the window in which Cancel could remove the entry and miss the reply.
	w.ch <- rep
	return true
}

// HoldProgress keeps rep, a progress message, with the waiter registered
// under its id until the waiter takes it (TakeProgress): a request that
// holds its connection has no record to keep progress in yet, and may be
// answered 202 after all. While it waits, a message replaces the one held
// before; once QueueProgress was called, messages queue behind the held
// ones (the latest MaxProgressKept, as a record keeps), so that they are
// stored in the order they came. It returns false when nobody waits for
// the id or the waiter takes no more: the caller then stores the message
// itself, or drops it.
func (r *Registry) HoldProgress(rep envelope.Reply) bool {
	sh := r.shard(rep.CorrelationID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	w, ok := sh.waiters[rep.CorrelationID]
	if !ok || w.noHold {
		return false
	}
	switch {
	case !w.taking:
		w.held = append(w.held[:0], rep)
	case len(w.held) == MaxProgressKept:
		w.held = append(w.held[1:], rep)
	default:
		w.held = append(w.held, rep)
	}
	return true
}

// QueueProgress tells the waiter that its request's record is about to be
// written: from now on HoldProgress queues messages behind the one held,
// which TakeProgress then returns in order.
func (w *Waiter) QueueProgress() {
	w.sh.mu.Lock()
	w.taking = true
	w.sh.mu.Unlock()
}

// TakeProgress returns the oldest progress message held for the waiter
// and forgets it; when none is held it returns nil, and from then on
// HoldProgress refuses the waiter's messages. A caller that has written
// the request's record calls it until nil, storing each message: what is
// held is then stored before any later message, which HoldProgress's
// caller stores itself.
func (w *Waiter) TakeProgress() *envelope.Reply {
	sh := w.sh
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(w.held) == 0 {
		w.held = nil
		w.noHold = true
		return nil
	}
	p := w.held[0]
	w.held = w.held[1:]
	return &p
}

// Len returns the number of waiting requests.
func (r *Registry) Len() int {
	n := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		n += len(sh.waiters)
		sh.mu.Unlock()
	}
	return n
}

// Close wakes every waiter by closing its channel and makes later Register
// calls fail with ErrClosed. A reply delivered before Close stays readable.
// Close is idempotent.
func (r *Registry) Close() {
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		if !sh.closed {
			sh.closed = true
			for id, w := range sh.waiters {
				delete(sh.waiters, id)
				close(w.ch)
			}
		}
		sh.mu.Unlock()
	}
}

// ID returns the correlation id the waiter is registered under.
func (w *Waiter) ID() string { return w.id }

// C returns the channel that receives the reply. A receive that reports
// !ok means the registry was closed (shutdown).
func (w *Waiter) C() <-chan envelope.Reply { return w.ch }

// Cancel removes the waiter if it is still registered. If a reply was
// delivered but not yet received from C (the reply raced the caller's
// timeout), Cancel returns it with true: the caller must use it, or store it.
// Cancel is idempotent and safe to call after a reply was received.
func (w *Waiter) Cancel() (envelope.Reply, bool) {
	sh := w.sh
	sh.mu.Lock()
	if cur, ok := sh.waiters[w.id]; ok && cur == w {
		delete(sh.waiters, w.id)
	}
	sh.mu.Unlock()
	// After the entry is gone no Deliver can send, so one non-blocking
	// receive observes any reply that was sent before.
	select {
	case rep, ok := <-w.ch:
		return rep, ok
	default:
		return envelope.Reply{}, false
	}
}
