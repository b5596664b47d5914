package correlation

import (
	"context"
	"time"
)

// Part is one part of a scatter-gather request: the request published to
// one of its route's destinations, with its own correlation id.
type Part struct {
	Name        string `json:"name"`
	Destination string `json:"destination"`
	ID          string `json:"id"`
	// Deadline is the part's own budget, when shorter than its parent's:
	// a part still pending after it has timed out.
	Deadline time.Time `json:"deadline,omitzero"`
}

// A store with scatter-gather (MemoryStore, redisstate.Store) links the
// record of a scatter-gather request, the parent, with the records of its
// parts: the parent's Result lists its Parts, and each part's Result names
// its Parent. The gateway reads the parts' records to answer for the
// parent, and, when it stores a part's reply, finds the parent to see
// whether the gather is complete.

// SetParts records parts on the pending record of parent, and parent on
// the record of each part that has one (write the parts' records first).
// ErrNotFound when parent has no live record, ErrCompleted or ErrCancelled
// when it has ended.
func (s *MemoryStore) SetParts(_ context.Context, parent string, parts []Part) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.pendingRecord(parent, now)
	if err != nil {
		return err
	}
	size := int64(0)
	for _, p := range parts {
		size += int64(len(p.Name)+len(p.Destination)+len(p.ID)) + partOverhead
	}
	r.Parts = append([]Part(nil), parts...)
	r.size += size
	s.size.Add(size)
	for _, p := range parts {
		if pr, ok := s.live(p.ID, now); ok {
			pr.Parent = parent
			pr.size += int64(len(parent))
			s.size.Add(int64(len(parent)))
		}
	}
	return nil
}

// partOverhead is what a part costs on its parent's record besides its
// strings, as counted against MaxBytes.
const partOverhead = 32
