package correlation

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
)

var (
	// ErrNotFound: no record for the id (never accepted, or expired).
	ErrNotFound = errors.New("correlation: no such request")
	// ErrCompleted: Complete was called on a record that already holds a
	// reply. The first reply wins; later ones are duplicates.
	ErrCompleted = errors.New("correlation: request already completed")
	// ErrCancelled: the request was cancelled (DELETE); its reply is discarded.
	ErrCancelled = errors.New("correlation: request cancelled")
	// ErrNoOwner: no gateway node has claimed the id (never claimed, or the
	// claim expired): a reply for it has no node to be forwarded to.
	ErrNoOwner = errors.New("correlation: no node owns the request")
)

// State is the lifecycle of a stored request.
type State int

const (
	// StatePending: accepted (202), no reply yet.
	StatePending State = iota + 1
	// StateDone: the reply is stored.
	StateDone
	// StateCancelled: the client cancelled the request; a late reply is
	// discarded.
	StateCancelled
)

func (s State) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateDone:
		return "done"
	case StateCancelled:
		return "cancelled"
	}
	return "unknown"
}

// Result is one stored request.
type Result struct {
	State   State
	Reply   envelope.Reply // set when State is StateDone
	Expires time.Time
}

// MemoryStoreConfig bounds a MemoryStore.
type MemoryStoreConfig struct {
	// MaxEntries caps the number of records (default 100 000). When full,
	// expired records go first, then the oldest.
	MaxEntries int
	// ResultTTL is how long a completed reply stays readable (default 10 min).
	ResultTTL time.Duration
}

// MemoryStore is an in-process Store, bounded in size and time. Expired
// records are dropped lazily, so it needs no goroutine.
type MemoryStore struct {
	cfg   MemoryStoreConfig
	mu    sync.Mutex
	items map[string]*record
	// Two orders over the same records, both needed because pending TTLs
	// vary per call and Complete extends a record's life: age (insertion
	// order, what evicts live records when the store is full) and expiry (a
	// min-heap, what finds the dead records wherever they are).
	age    ageList
	expiry expiryHeap
}

type record struct {
	id         string
	prev, next *record // in age, oldest first
	index      int     // in expiry
	Result
}

// NewMemoryStore returns an empty store.
func NewMemoryStore(cfg MemoryStoreConfig) *MemoryStore {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 100_000
	}
	if cfg.ResultTTL <= 0 {
		cfg.ResultTTL = 10 * time.Minute
	}
	return &MemoryStore{cfg: cfg, items: make(map[string]*record)}
}

// Pending records that id was accepted and may be polled for ttl. It is a
// no-op when a record exists (a reply that already landed is never hidden).
func (s *MemoryStore) Pending(_ context.Context, id string, ttl time.Duration) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.items[id]; ok && !r.expired(now) {
		return nil
	}
	s.put(id, Result{State: StatePending, Expires: now.Add(ttl)}, now)
	return nil
}

// Complete stores rep for a pending request. It returns ErrNotFound when no
// live record exists (the reply is an orphan), ErrCompleted when a reply
// is stored already (a duplicate) and ErrCancelled when the request was
// cancelled.
func (s *MemoryStore) Complete(_ context.Context, rep envelope.Reply) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.live(rep.CorrelationID, now)
	if !ok {
		return ErrNotFound
	}
	switch r.State {
	case StateDone:
		return ErrCompleted
	case StateCancelled:
		return ErrCancelled
	}
	r.State, r.Reply, r.Expires = StateDone, rep, now.Add(s.cfg.ResultTTL)
	s.expiry.fix(r)
	return nil
}

// live returns the unexpired record for id. An expired record is dropped on
// the way, so that it never answers for the id again.
func (s *MemoryStore) live(id string, now time.Time) (*record, bool) {
	r, ok := s.items[id]
	if !ok {
		return nil, false
	}
	if r.expired(now) {
		s.remove(r)
		return nil, false
	}
	return r, true
}

// Get returns the record for id, or ErrNotFound.
func (s *MemoryStore) Get(_ context.Context, id string) (Result, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.live(id, now)
	if !ok {
		return Result{}, ErrNotFound
	}
	return r.Result, nil
}

// Delete removes the record for id, if any.
func (s *MemoryStore) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.items[id]; ok {
		s.remove(r)
	}
	return nil
}

// Len returns the number of records, expired ones not yet dropped included.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

func (s *MemoryStore) put(id string, res Result, now time.Time) {
	if r, ok := s.items[id]; ok {
		s.remove(r)
	}
	// Amortised clean-up: drop a couple of expired records on every insert,
	// so an idle store does not hold dead results forever. More than one
	// per insert, so the dead ones cannot pile up.
	for range 2 {
		if !s.dropExpired(now) {
			break
		}
	}
	if len(s.items) >= s.cfg.MaxEntries && !s.dropExpired(now) {
		s.remove(s.age.oldest) // full and none dead: the oldest goes
	}
	r := &record{id: id, Result: res}
	s.age.push(r)
	s.expiry.push(r)
	s.items[id] = r
}

// dropExpired removes the record that expires first if it has expired.
func (s *MemoryStore) dropExpired(now time.Time) bool {
	if len(s.expiry) == 0 || !s.expiry[0].r.expired(now) {
		return false
	}
	s.remove(s.expiry[0].r)
	return true
}

func (s *MemoryStore) remove(r *record) {
	delete(s.items, r.id)
	s.age.remove(r)
	s.expiry.remove(r)
}

func (r *record) expired(now time.Time) bool {
	return !now.Before(r.Expires)
}
