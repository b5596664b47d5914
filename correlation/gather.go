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
	// Failed says why the part was never published (the broker refused
	// it); "" when it was.
	Failed string `json:"failed,omitempty"`
}

// Gathering is what the record of a scatter-gather request keeps about
// it: its route, the rule that says when it is complete, and its parts.
type Gathering struct {
	Route  string `json:"route,omitempty"`
	Rule   string `json:"rule"`
	Quorum int    `json:"quorum,omitempty"`
	Parts  []Part `json:"parts"`
}

// A store with scatter-gather (MemoryStore, redisstate.Store) links the
// record of a scatter-gather request, the parent, with the records of its
// parts: the parent's Result lists its Parts, and each part's Result names
// its Parent. The gateway reads the parts' records to answer for the
// parent, and, when it stores a part's reply, finds the parent to see
// whether the gather is complete.

// SetParts records g on the pending record of parent (replacing what was
// recorded), and parent on the record of each of g's parts that has one
// (write the parts' records first). ErrNotFound when parent has no live
// record, ErrCompleted or ErrCancelled when it has ended.
func (s *MemoryStore) SetParts(_ context.Context, parent string, g Gathering) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.pendingRecord(parent, now)
	if err != nil {
		return err
	}
	size := int64(len(g.Route) + len(g.Rule))
	for _, p := range g.Parts {
		size += int64(len(p.Name)+len(p.Destination)+len(p.ID)+len(p.Failed)) + partOverhead
	}
	if r.Gather != nil {
		size -= r.gatherSize
	}
	g.Parts = append([]Part(nil), g.Parts...)
	r.Gather, r.gatherSize = &g, size
	r.size += size
	s.size.Add(size)
	for _, p := range g.Parts {
		if pr, ok := s.live(p.ID, now); ok && pr.Parent == "" {
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
