package correlation

import (
	"context"
	"time"
)

// Cancel marks a pending request cancelled for principal: a later
// Complete fails with ErrCancelled and Get reports StateCancelled until the
// result TTL passes. It returns ErrNotFound when no live record exists or
// the record is not VisibleTo principal (the same answer: no existence
// oracle), and ErrCompleted when the reply is stored already. Cancelling a
// cancelled request is a no-op.
func (s *MemoryStore) Cancel(_ context.Context, id, principal string) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.live(id, now)
	if !ok || !r.VisibleTo(principal) {
		return ErrNotFound
	}
	switch r.State {
	case StateDone:
		return ErrCompleted
	case StateCancelled:
		return nil
	}
	r.State, r.Expires = StateCancelled, now.Add(s.cfg.ResultTTL)
	s.expiry.fix(r)
	s.noteExpiry()
	return nil
}
