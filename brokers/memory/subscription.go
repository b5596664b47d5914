package memory

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/syncgate/syncgate/brokers"
)

// subscription runs the workers of one Subscribe call on its group.
type subscription struct {
	g             *group
	h             brokers.Handler
	workers       int
	retryDelay    time.Duration
	maxRetryDelay time.Duration
	maxDeliveries int
	deadLetter    func(context.Context, brokers.Message, error)

	// Keyed dispatch, for workers > 1. One worker at a time takes messages
	// from the group (recvMu, the latest idle worker first), so a message
	// parked behind its key is parked in the order it was taken. The worker that owns a key hands the parked
	// messages of that key to the handler in order before it takes new ones.
	recvMu    lifoMutex
	mu        sync.Mutex
	busy      map[string][]brokers.Message // key in flight → messages parked behind it
	parked    atomic.Int32                 // messages in busy, written under mu
	maxParked int32
	room      chan struct{} // cap 1: parked went down
}

func newSubscription(g *group, h brokers.Handler, sc brokers.SubscribeConfig, cfg Config) *subscription {
	workers := sc.Concurrency
	s := &subscription{
		g:             g,
		h:             h,
		workers:       workers,
		retryDelay:    cfg.RetryDelay,
		maxRetryDelay: cfg.MaxRetryDelay,
		maxDeliveries: cfg.MaxDeliveries,
		deadLetter:    sc.DeadLetter,
	}
	if workers > 1 {
		s.busy = make(map[string][]brokers.Message)
		s.maxParked = int32(min(workers, 1<<20))
		s.room = make(chan struct{}, 1)
	}
	return s
}

// run returns when ctx ends and every worker returned.
func (s *subscription) run(ctx context.Context) {
	if s.workers == 1 {
		s.serial(ctx)
		return
	}
	var wg sync.WaitGroup
	for range s.workers {
		wg.Go(func() { s.keyed(ctx) })
	}
	wg.Wait()
}

// serial is the one worker of a subscription with concurrency 1: order per
// key follows from handling one message at a time and retrying in place.
func (s *subscription) serial(ctx context.Context) {
	done := ctx.Done()
	for {
		m, ok := s.g.take(done)
		if !ok {
			return
		}
		if !s.deliver(ctx, m) {
			s.g.giveBack(m)
		}
	}
}

// keyed is one of several workers that keep order per key.
func (s *subscription) keyed(ctx context.Context) {
	done := ctx.Done()
	wake := make(chan struct{}, 1) // this worker's turn at recvMu
	var back []brokers.Message
	for {
		m, ok := s.next(done, wake)
		if !ok {
			return
		}
		for more := true; more; {
			if back != nil || !s.deliver(ctx, m) {
				// Stopped: m and everything parked behind it go back, in order.
				back = append(back, m)
			}
			if m.Key == "" {
				break
			}
			m, more = s.release(m.Key)
		}
		if back != nil {
			s.g.giveBack(back...)
			return
		}
	}
}

// next takes the next message whose key is not in flight and marks its key
// busy. Messages whose key is in flight are parked behind it.
func (s *subscription) next(done <-chan struct{}, wake chan struct{}) (brokers.Message, bool) {
	s.recvMu.lock(wake)
	defer s.recvMu.unlock()
	for {
		for s.parked.Load() >= s.maxParked {
			select {
			case <-s.room:
			case <-done:
				return brokers.Message{}, false
			}
		}
		m, ok := s.g.take(done)
		if !ok || m.Key == "" {
			return m, ok
		}
		s.mu.Lock()
		q, inFlight := s.busy[m.Key]
		if inFlight {
			s.busy[m.Key] = append(q, m)
			s.parked.Add(1)
		} else {
			s.busy[m.Key] = nil
		}
		s.mu.Unlock()
		if !inFlight {
			return m, true
		}
	}
}

// release returns the next message parked behind key, or frees key.
func (s *subscription) release(key string) (brokers.Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.busy[key]
	if len(q) == 0 {
		delete(s.busy, key)
		return brokers.Message{}, false
	}
	m := q[0]
	q[0] = brokers.Message{}
	s.busy[key] = q[1:]
	s.parked.Add(-1)
	select {
	case s.room <- struct{}{}:
	default:
	}
	return m, true
}

// deliver hands a copy of m to the handler until it succeeds or fails
// maxDeliveries times (true: m is settled; after the last failure it is
// given to the DeadLetter callback and dropped), or until ctx ends first
// (false: m was not acknowledged).
func (s *subscription) deliver(ctx context.Context, m brokers.Message) bool {
	done := ctx.Done()
	var timer *time.Timer
	delay := s.retryDelay
	for attempt := 1; ; attempt++ {
		select {
		case <-done:
			return false
		default:
		}
		err := s.h(ctx, m.Clone())
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false // stopped while handling: not an attempt that failed
		}
		if attempt >= s.maxDeliveries {
			s.deadLetter(ctx, m.Clone(), err)
			return true
		}
		if timer == nil {
			timer = time.NewTimer(delay)
		} else {
			timer.Reset(delay)
		}
		select {
		case <-timer.C:
		case <-done:
			timer.Stop()
			return false
		}
		delay = min(2*delay, s.maxRetryDelay)
	}
}
