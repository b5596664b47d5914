package correlation

import (
	"context"
	"time"
)

// Progress is one progress message a service sent for an accepted request
// before its reply (envelope.Reply.Progress).
type Progress struct {
	// Seq numbers a request's progress messages 1, 2, ... in the order
	// the store took them; the reply comes as Seq+1 of the last (see
	// Result.Seq). Set by the store.
	Seq         int
	ContentType string
	Body        []byte
}

// MaxProgressKept is how many progress messages a record keeps: the latest
// ones. An event stream that resumes from an older one goes on from the
// oldest kept.
const MaxProgressKept = 16

// progressOverhead is what a kept progress message costs besides its
// content type and body, as counted against MemoryStoreConfig.MaxBytes.
const progressOverhead = 64

func progressSize(p Progress) int64 {
	return int64(progressOverhead + len(p.ContentType) + cap(p.Body))
}

// Progress keeps a progress message for the pending request id and returns
// its sequence number. It fails with ErrNotFound when no live record
// exists (the request holds its connection, was never accepted or has
// expired), ErrCompleted or ErrCancelled when the request has ended (a
// late progress message is dropped), and an error wrapping ErrFull when
// the store is over MaxBytes: progress is best effort, and is refused
// before room that replies were promised runs out.
func (s *MemoryStore) Progress(_ context.Context, id string, p Progress) (int, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.pendingRecord(id, now)
	if err != nil {
		return 0, err
	}
	size := progressSize(p)
	if s.size.Load()+size > s.cfg.MaxBytes {
		return 0, s.fullError()
	}
	r.Seq++
	p.Seq = r.Seq
	if len(r.Progress) == MaxProgressKept {
		size -= progressSize(r.Progress[0])
		copy(r.Progress, r.Progress[1:])
		r.Progress[len(r.Progress)-1] = p
	} else {
		r.Progress = append(r.Progress, p)
	}
	r.size += size
	s.size.Add(size)
	return p.Seq, nil
}

// Events returns the record for id with the progress messages kept after
// sequence number after (all kept ones for 0), oldest first; ErrNotFound
// when there is none.
func (s *MemoryStore) Events(_ context.Context, id string, after int) (Result, error) {
	return s.read(id, max(after, 0))
}

// read returns a copy of the record for id that shares nothing with it,
// with the progress messages after sequence number after (-1: the latest
// only), or ErrNotFound.
func (s *MemoryStore) read(id string, after int) (Result, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.live(id, now)
	if !ok {
		return Result{}, ErrNotFound
	}
	res := r.Result
	res.Progress = nil
	res.Delivery = copyDelivery(r.Delivery)
	if r.Gather != nil {
		g := *r.Gather
		g.Parts = append([]Part(nil), g.Parts...)
		res.Gather = &g
	}
	if after < 0 {
		after = r.Seq - 1
	}
	for i, p := range r.Progress {
		if p.Seq > after {
			res.Progress = append([]Progress(nil), r.Progress[i:]...)
			break
		}
	}
	return res, nil
}

// progressBytes is what r's kept progress messages count against MaxBytes.
func (r *record) progressBytes() int64 {
	var n int64
	for _, p := range r.Progress {
		n += progressSize(p)
	}
	return n
}
