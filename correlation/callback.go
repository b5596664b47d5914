package correlation

import (
	"context"
	"time"
)

// Callback is where the reply of an accepted request is delivered (a
// webhook), recorded with the request's pending record.
type Callback struct {
	URL string
	// Route names the route whose callback settings (secrets, guard)
	// apply.
	Route string
	// Until is when retrying the delivery stops.
	Until time.Time
}

// DeliveryState is where a callback's delivery stands.
type DeliveryState string

// The delivery states.
const (
	// DeliveryWaiting: the reply is not in yet.
	DeliveryWaiting DeliveryState = "waiting"
	// DeliveryPending: the reply is in; the delivery is being attempted.
	DeliveryPending DeliveryState = "pending"
	// DeliveryDelivered: the receiver answered 2xx.
	DeliveryDelivered DeliveryState = "delivered"
	// DeliveryFailed: the retry window passed, or the callback was
	// refused for good (no such route, a non-public address).
	DeliveryFailed DeliveryState = "failed"
)

// Attempt is one delivery attempt.
type Attempt struct {
	At     time.Time `json:"at"`
	Status int       `json:"status,omitempty"` // the receiver's HTTP status; 0 when none came
	Error  string    `json:"error,omitempty"`
}

// MaxAttemptsKept is how many attempts a record keeps: the latest.
const MaxAttemptsKept = 20

// Delivery is a request's callback and how its delivery went.
type Delivery struct {
	Callback
	State DeliveryState
	// Attempts are the latest attempts, oldest first; Count counts all.
	Attempts []Attempt
	Count    int
}

// A store with callbacks (MemoryStore, redisstate.Store) queues the
// delivery of a request's reply when Complete stores it, if the request
// has a callback; ClaimDeliveries takes the due ones for a worker, leased
// so that a worker that dies leaves them to another; RecordAttempt ends
// or reschedules one.

// SetCallback records cb for the pending request id; Complete then queues
// its delivery. ErrNotFound when there is no live record, ErrCompleted or
// ErrCancelled when the request has ended (its reply was answered some
// other way, or never will be).
func (s *MemoryStore) SetCallback(_ context.Context, id string, cb Callback) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.pendingRecord(id, now)
	if err != nil {
		return err
	}
	r.Delivery = &Delivery{Callback: cb, State: DeliveryWaiting}
	size := int64(len(cb.URL) + len(cb.Route) + deliveryOverhead)
	r.size += size
	s.size.Add(size)
	return nil
}

// deliveryOverhead is what a callback costs besides its strings, as
// counted against MaxBytes; its attempts are not counted (at most
// MaxAttemptsKept).
const deliveryOverhead = 128

// queueDelivery queues the delivery of r's reply, if it has a callback.
// The store is locked.
func (s *MemoryStore) queueDelivery(r *record, now time.Time) {
	if r.Delivery == nil || r.Delivery.State != DeliveryWaiting {
		return
	}
	r.Delivery.State = DeliveryPending
	if s.due == nil {
		s.due = make(map[string]time.Time)
	}
	s.due[r.id] = now
	select {
	case s.dueCh <- struct{}{}:
	default:
	}
}

// DeliveriesQueued is closed over by a worker that waits for work: it
// receives (without blocking the store) whenever a delivery is queued.
func (s *MemoryStore) DeliveriesQueued() <-chan struct{} { return s.dueCh }

// ClaimDeliveries returns up to n ids whose delivery is due at now, each
// leased for lease: it is not claimed again before now+lease unless
// RecordAttempt reschedules it.
func (s *MemoryStore) ClaimDeliveries(_ context.Context, now time.Time, n int, lease time.Duration) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, at := range s.due {
		if len(ids) == n {
			break
		}
		if r, ok := s.live(id, now); !ok || r.Delivery == nil {
			delete(s.due, id) // expired with its record
			continue
		}
		if !at.After(now) {
			ids = append(ids, id)
			s.due[id] = now.Add(lease)
		}
	}
	return ids, nil
}

// RecordAttempt records attempt a of id's delivery and sets its state:
// pending with next, the time of the next attempt, or delivered or failed,
// which take it off the queue. ErrNotFound when the record is gone.
func (s *MemoryStore) RecordAttempt(_ context.Context, id string, a Attempt, state DeliveryState, next time.Time) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.live(id, now)
	if !ok || r.Delivery == nil {
		delete(s.due, id)
		return ErrNotFound
	}
	d := r.Delivery
	d.Count++
	if len(d.Attempts) == MaxAttemptsKept {
		copy(d.Attempts, d.Attempts[1:])
		d.Attempts[len(d.Attempts)-1] = a
	} else {
		d.Attempts = append(d.Attempts, a)
	}
	d.State = state
	if state == DeliveryPending {
		s.due[id] = next
	} else {
		delete(s.due, id)
	}
	return nil
}

// copyDelivery returns a copy of d that shares nothing with it.
func copyDelivery(d *Delivery) *Delivery {
	if d == nil {
		return nil
	}
	c := *d
	c.Attempts = append([]Attempt(nil), d.Attempts...)
	return &c
}
