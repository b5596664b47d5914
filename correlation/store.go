package correlation

import (
	"container/list"
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
)

// State is the lifecycle of a stored request.
type State int

const (
	// StatePending: accepted (202), no reply yet.
	StatePending State = iota + 1
	// StateDone: the reply is stored.
	StateDone
)

func (s State) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateDone:
		return "done"
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
	items map[string]*list.Element // of *record
	order *list.List               // insertion order, oldest at Front
}

type record struct {
	id string
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
	return &MemoryStore{cfg: cfg, items: make(map[string]*list.Element), order: list.New()}
}

// Pending records that id was accepted and may be polled for ttl. It is a
// no-op when a record exists (a reply that already landed is never hidden).
func (s *MemoryStore) Pending(_ context.Context, id string, ttl time.Duration) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[id]; ok && !expired(e, now) {
		return nil
	}
	s.put(id, Result{State: StatePending, Expires: now.Add(ttl)}, now)
	return nil
}

// Complete stores rep for a pending request. It returns ErrNotFound when no
// live record exists (the reply is an orphan) and ErrCompleted when a reply
// is stored already (a duplicate).
func (s *MemoryStore) Complete(_ context.Context, rep envelope.Reply) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.items[rep.CorrelationID]
	if !ok || expired(e, now) {
		return ErrNotFound
	}
	r := e.Value.(*record)
	if r.State == StateDone {
		return ErrCompleted
	}
	r.State, r.Reply, r.Expires = StateDone, rep, now.Add(s.cfg.ResultTTL)
	return nil
}

// Get returns the record for id, or ErrNotFound.
func (s *MemoryStore) Get(_ context.Context, id string) (Result, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.items[id]
	if !ok {
		return Result{}, ErrNotFound
	}
	if expired(e, now) {
		s.remove(e)
		return Result{}, ErrNotFound
	}
	return e.Value.(*record).Result, nil
}

// Delete removes the record for id, if any.
func (s *MemoryStore) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[id]; ok {
		s.remove(e)
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
	if e, ok := s.items[id]; ok {
		s.remove(e)
	}
	// Amortised clean-up: drop a couple of expired records from the old end
	// on every insert, so an idle store does not hold dead results forever.
	for i := 0; i < 2; i++ {
		if e := s.order.Front(); e != nil && expired(e, now) {
			s.remove(e)
		}
	}
	if len(s.items) >= s.cfg.MaxEntries {
		s.remove(s.order.Front()) // full: the oldest record goes
	}
	s.items[id] = s.order.PushBack(&record{id: id, Result: res})
}

func (s *MemoryStore) remove(e *list.Element) {
	delete(s.items, e.Value.(*record).id)
	s.order.Remove(e)
}

func expired(e *list.Element, now time.Time) bool {
	return !now.Before(e.Value.(*record).Expires)
}
