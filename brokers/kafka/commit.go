package kafka

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"time"
)

// offsets collects the next offset to commit per partition.
type offsets struct {
	mu   sync.Mutex
	next map[int]int64
}

func newOffsets() *offsets { return &offsets{next: make(map[int]int64)} }

func (o *offsets) mark(partition int, next int64) {
	o.mu.Lock()
	if next > o.next[partition] {
		o.next[partition] = next
	}
	o.mu.Unlock()
}

// take returns the marked offsets and forgets them.
func (o *offsets) take() map[int]int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.next) == 0 {
		return nil
	}
	t := o.next
	o.next = make(map[int]int64, len(t))
	return t
}

// putBack returns offsets whose commit failed, unless newer ones were marked.
func (o *offsets) putBack(t map[int]int64) {
	for p, n := range t {
		o.mark(p, n)
	}
}

// commitLoop commits every interval until stop ends, then waits for the
// records in hand (running) and commits what was handled last.
func commitLoop(stop context.Context, interval time.Duration, o *offsets, running *sync.WaitGroup, commit func(map[int]int64) error, log *slog.Logger) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	failures := 0 // in a row: one warning when commits start failing, not one per interval
	flush := func() {
		t := o.take()
		if t == nil {
			return
		}
		err := commit(t)
		switch {
		case errors.Is(err, errCommitDiscarded):
			return
		case err == nil:
			if failures > 0 {
				log.Info("kafka: offset commits succeed again", "failures", failures)
			}
			failures = 0
			return
		case errors.Is(err, errCommitDeferred):
		case failures == 0:
			log.Warn("kafka: offset commit failed, retrying", "offsets", maps.Clone(t), "err", err)
		default:
			log.Debug("kafka: offset commit failed", "offsets", maps.Clone(t), "err", err)
		}
		failures++
		o.putBack(t)
	}
	for {
		select {
		case <-tick.C:
			flush()
		case <-stop.Done():
			running.Wait()
			flush()
			return
		}
	}
}

// backoff grows quadratically from min to max with the attempt number.
func backoff(attempt int, min, max time.Duration) time.Duration {
	d := time.Duration(attempt*attempt) * min
	if d <= 0 || d > max {
		return max
	}
	return d
}

// wait pauses for d; false when ctx ended first.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
