package correlation

import (
	"context"
	"time"
)

// sweepBatch bounds the records one lock hold of a sweep drops, so that a
// sweep of many dead records never stalls the requests that need the lock
// for longer than a few tens of microseconds.
const sweepBatch = 256

// shrinkAbove is the record count under which a store's map and heap are
// not worth remaking when they have emptied.
const shrinkAbove = 1024

// Run drops expired records every SweepInterval until ctx ends, so that an
// idle store gives the memory of its dead results back (without it they go
// only when new records are stored). Its caller owns the goroutine: run it
// in the errgroup of the component that owns the store and cancel ctx to
// stop it; Run returns once it has stopped.
func (s *MemoryStore) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sweep(ctx)
		}
	}
}

// sweep drops every record expired by now, sweepBatch per lock hold.
func (s *MemoryStore) sweep(ctx context.Context) {
	now := time.Now()
	for ctx.Err() == nil {
		if s.sweepBatch(now) < sweepBatch {
			return
		}
	}
}

// sweepBatch drops up to sweepBatch expired records and returns how many it
// dropped. Once the store has shrunk to an eighth of its peak, it remakes
// the map and the heap: Go maps keep their buckets after deletes, so
// without it a burst would hold its index memory forever.
func (s *MemoryStore) sweepBatch(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for n < sweepBatch && s.dropExpired(now) {
		n++
	}
	if s.peak > shrinkAbove && len(s.items) <= s.peak/8 {
		items := make(map[string]*record, len(s.items))
		for id, r := range s.items {
			items[id] = r
		}
		s.items = items
		s.expiry = append(expiryHeap(nil), s.expiry...)
		s.peak = len(s.items)
	}
	return n
}
