package correlation

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
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
	// ErrFull: the store holds as many live records (or bytes) as it may,
	// and none of them may go before it expires, so a new record is
	// refused. Room comes back as records expire.
	ErrFull = errors.New("correlation: result store full")
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
	// Principal is who made the request ("" when anonymous), as given to
	// Pending. See VisibleTo.
	Principal string
	// Seq is the sequence number of the latest progress message stored
	// for the request (0: none); its reply is event Seq+1 of its stream.
	Seq int
	// Progress holds progress messages read with the record, oldest
	// first: Get returns the latest one, Events those after a sequence
	// number that are still kept (see MaxProgressKept).
	Progress []Progress
	// Delivery is the request's callback and how its delivery went; nil
	// without one.
	Delivery *Delivery
	// Queued: the pending request waits in the gateway's outbox for the
	// broker. Set by the gateway (gateway.Outbox), not by stores.
	Queued bool
	// Gather is set on the record of a scatter-gather request, Parent on
	// the records of its parts. See SetParts.
	Gather *Gathering
	Parent string
}

// VisibleTo reports whether principal may read or cancel the request: its
// own principal may, and anybody may an anonymous one (as before callers
// had identities: whoever holds its id). A request with a principal is
// never anybody else's, anonymous callers included; the gateway answers
// them as for an unknown id.
func (r Result) VisibleTo(principal string) bool {
	return r.Principal == "" || r.Principal == principal
}

// MemoryStoreConfig bounds a MemoryStore.
type MemoryStoreConfig struct {
	// MaxEntries caps the number of records (default 100 000).
	MaxEntries int
	// MaxBytes caps the records' size: reply bodies, headers and a fixed
	// overhead per record (default 256 MiB; see DefaultMaxBytes).
	MaxBytes int64
	// ResultTTL is how long a completed reply stays readable (default 10 min).
	ResultTTL time.Duration
	// SweepInterval is how often Run drops expired records (default 1 s).
	SweepInterval time.Duration
}

// DefaultMaxBytes bounds a MemoryStore's records by default. 256 MiB holds
// the full default entry cap (100 000) of replies up to ~2 KiB, the usual
// JSON answer, so that for them the entry cap binds first; and it holds 256
// results at the default request body limit (1 MiB), so that a burst of
// large async requests is refused long before a container sized at 512 MiB
// to 1 GiB runs out of memory.
const DefaultMaxBytes = 256 << 20

// MemoryStore is an in-process Store, bounded in entries and bytes.
//
// An accepted request is a promise, so no live record is ever evicted: a
// pending record must answer its poll until its reply or its timeout, and a
// completed one until its TTL (the poller was told to come back). When the
// store is full of live records, Pending refuses a new record with ErrFull
// and the gateway answers 503 with Retry-After; Room tells beforehand, for
// requests that may need a record later. Complete never fails for lack of
// room: it replaces a pending record, which reserved the size of an
// average reply (see pendingSize), so the bytes exceed MaxBytes only by
// how much the replies outgrow that estimate, until they expire (Promise
// may likewise exceed MaxEntries; see there).
//
// Expired records are dropped lazily, on every insert, and in the
// background by Run.
type MemoryStore struct {
	cfg   MemoryStoreConfig
	mu    sync.Mutex
	items map[string]*record
	// expiry orders the records by expiry (a min-heap): pending TTLs vary
	// per call and Complete extends a record's life, so it is what finds
	// the dead records wherever they are.
	expiry expiryHeap
	// peak is the most records held since items was made: Go maps do not
	// shrink, so Run makes a new one when the store has emptied.
	peak int
	// n and size mirror len(items) and the sum of the records' sizes, next
	// the expiry key of the first record to expire. They change under mu
	// but are read without it, by Room, Len and Bytes.
	n, size, next atomic.Int64
	// replyEstimate is what a pending record reserves for its reply (see
	// pendingSize). Written under mu, read without it.
	replyEstimate atomic.Int64
	// due holds the queued callback deliveries: id → when it is next due
	// (see callback.go); dueCh wakes a waiting worker.
	due   map[string]time.Time
	dueCh chan struct{}
}

type record struct {
	id    string
	index int   // in expiry
	size  int64 // what it counts against MaxBytes
	// gatherSize is what Gather counts in size (SetParts replaces it).
	gatherSize int64
	Result
}

// NewMemoryStore returns an empty store. Run reclaims its expired records
// in the background.
func NewMemoryStore(cfg MemoryStoreConfig) *MemoryStore {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 100_000
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.ResultTTL <= 0 {
		cfg.ResultTTL = 10 * time.Minute
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = time.Second
	}
	s := &MemoryStore{cfg: cfg, items: make(map[string]*record), dueCh: make(chan struct{}, 1)}
	s.next.Store(math.MaxInt64)
	return s
}

// Pending records that id was accepted for principal ("" when anonymous)
// and may be polled for ttl. It is a no-op when a live record exists (a
// reply that already landed is never hidden). It fails with an error
// wrapping ErrFull when the store is full of live records: nothing is
// evicted to make room.
func (s *MemoryStore) Pending(_ context.Context, id, principal string, ttl time.Duration) error {
	if !s.pending(id, principal, ttl, true) {
		return s.fullError()
	}
	return nil
}

// Promise is Pending for a request that has been published already and is
// about to be answered 202 (an auto route whose wait ran out): it is never
// refused, because the request was admitted when Room said there was room
// and it has reached its service. The store may hold more than MaxEntries
// records by the requests that were waiting at once (bounded by the HTTP
// in-flight limit); new records are refused until it is back below.
func (s *MemoryStore) Promise(_ context.Context, id, principal string, ttl time.Duration) error {
	s.pending(id, principal, ttl, false)
	return nil
}

// pending stores a pending record for id unless a live one exists, and
// reports false when strict and the store is full.
func (s *MemoryStore) pending(id, principal string, ttl time.Duration, strict bool) bool {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.items[id]; ok {
		if !r.expired(now) {
			return true
		}
		s.remove(r)
	}
	// Amortised clean-up, for a store nobody Runs: drop a couple of
	// expired records on every insert. More than one per insert, so the
	// dead ones cannot pile up.
	for range 2 {
		if !s.dropExpired(now) {
			break
		}
	}
	size := s.pendingSize(id) + int64(len(principal))
	if strict && !s.makeRoom(now, size) {
		return false
	}
	r := &record{id: id, size: size, Result: Result{State: StatePending, Expires: now.Add(ttl), Principal: principal}}
	s.expiry.push(r)
	s.items[id] = r
	s.n.Add(1)
	s.size.Add(size)
	s.peak = max(s.peak, len(s.items))
	s.noteExpiry()
	return true
}

// pendingSize is what a new pending record counts against MaxBytes: its
// own size plus the size its reply is expected to have, a moving average of
// the replies stored. Without the reservation, a burst of requests
// answered 202 before their replies come back would all fit (a pending
// record is small) and their replies would then take the store past
// MaxBytes by the whole burst; with it, past MaxBytes only by how much
// the replies outgrow the estimate.
func (s *MemoryStore) pendingSize(id string) int64 {
	return recordSize(id, nil) + s.replyEstimate.Load()
}

// learnReplySize moves the reply estimate an eighth of the way towards a
// stored reply's size (all the way for the first). The store is locked.
func (s *MemoryStore) learnReplySize(n int64) {
	est := s.replyEstimate.Load()
	if est == 0 {
		est = n
	} else {
		est += (n - est) / 8
	}
	s.replyEstimate.Store(max(est, 0))
}

// Room returns nil when a new pending record would be stored now, and an
// error wrapping ErrFull when Pending would refuse it. It takes no lock
// while the store is below its bounds, nor while it is full of records none
// of which has expired, so calling it for every request that may need a
// record later is cheap, and a flood of refused requests does not contend
// on the store's lock.
func (s *MemoryStore) Room() error {
	size := s.pendingSize(pendingID)
	if !s.over(s.n.Load(), s.size.Load(), size) {
		return nil
	}
	now := time.Now()
	if expiryKey(now) < s.next.Load() {
		return s.fullError() // nothing has expired yet
	}
	s.mu.Lock()
	ok := s.makeRoom(now, size)
	s.mu.Unlock()
	if !ok {
		return s.fullError()
	}
	return nil
}

// pendingID stands for the id of a record Room makes room for: ids are
// UUIDs, all of one length.
const pendingID = "01234567-89ab-7def-8123-456789abcdef"

// over reports whether a record of size added to n records of total bytes
// would break a bound.
func (s *MemoryStore) over(n, bytes, size int64) bool {
	return n >= int64(s.cfg.MaxEntries) || bytes+size > s.cfg.MaxBytes
}

// makeRoom drops expired records until a record of size fits, and reports
// whether it does. The store is locked.
func (s *MemoryStore) makeRoom(now time.Time, size int64) bool {
	for s.over(int64(len(s.items)), s.size.Load(), size) {
		if !s.dropExpired(now) {
			return false
		}
	}
	return true
}

// fullError describes the store's state; it reads the counters only, so it
// is built outside the lock.
func (s *MemoryStore) fullError() error {
	return &fullErr{records: s.n.Load(), bytes: s.size.Load(), cfg: &s.cfg}
}

// fullErr wraps ErrFull with the store's state, formatted only when
// logged: a refusal costs one small allocation.
type fullErr struct {
	records, bytes int64
	cfg            *MemoryStoreConfig
}

func (e *fullErr) Error() string {
	return fmt.Sprintf("%v: %d records (cap %d), %d bytes (cap %d), none expired",
		ErrFull, e.records, e.cfg.MaxEntries, e.bytes, e.cfg.MaxBytes)
}

func (e *fullErr) Unwrap() error { return ErrFull }

// noteExpiry publishes when the first record expires, for Room to read
// without the lock. The store is locked.
func (s *MemoryStore) noteExpiry() {
	next := int64(math.MaxInt64)
	if len(s.expiry) > 0 {
		next = s.expiry[0].expires
	}
	s.next.Store(next)
}

// Complete stores rep for a pending request. It returns ErrNotFound when no
// live record exists (the reply is an orphan), ErrCompleted when a reply
// is stored already (a duplicate) and ErrCancelled when the request was
// cancelled. It never fails for lack of room (see MemoryStore).
func (s *MemoryStore) Complete(_ context.Context, rep envelope.Reply) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.pendingRecord(rep.CorrelationID, now)
	if err != nil {
		return err
	}
	size := recordSize(r.id, &rep) + int64(len(r.Principal)) + r.progressBytes() + r.gatherSize + int64(len(r.Parent))
	s.size.Add(size - r.size)
	r.size = size
	s.learnReplySize(recordSize(r.id, &rep) - recordSize(r.id, nil))
	r.State, r.Reply, r.Expires = StateDone, rep, now.Add(s.cfg.ResultTTL)
	s.expiry.fix(r)
	s.noteExpiry()
	s.queueDelivery(r, now)
	return nil
}

// pendingRecord returns the live pending record of id, or why there is
// none: ErrNotFound, ErrCompleted, ErrCancelled. The store is locked.
func (s *MemoryStore) pendingRecord(id string, now time.Time) (*record, error) {
	r, ok := s.live(id, now)
	switch {
	case !ok:
		return nil, ErrNotFound
	case r.State == StateDone:
		return nil, ErrCompleted
	case r.State == StateCancelled:
		return nil, ErrCancelled
	}
	return r, nil
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

// Get returns the record for id, with its latest progress message, or
// ErrNotFound.
func (s *MemoryStore) Get(_ context.Context, id string) (Result, error) {
	return s.read(id, -1)
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

// OutlivesProcess reports false: the records live and die with this
// process, so a gateway that is stopping answers no more 202s whose
// Location it could not serve (gateway.Drain).
func (s *MemoryStore) OutlivesProcess() bool { return false }

// Len returns the number of records, expired ones not yet dropped included.
func (s *MemoryStore) Len() int { return int(s.n.Load()) }

// Bytes returns the size of the records as counted against MaxBytes,
// expired ones not yet dropped included.
func (s *MemoryStore) Bytes() int64 { return s.size.Load() }

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
	if r.Delivery != nil {
		delete(s.due, r.id)
	}
	s.expiry.remove(r)
	s.n.Add(-1)
	s.size.Add(-r.size)
	s.noteExpiry()
}

func (r *record) expired(now time.Time) bool {
	return !now.Before(r.Expires)
}
