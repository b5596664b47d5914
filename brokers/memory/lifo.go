package memory

import "sync"

// lifoMutex is a mutex whose waiters get it last in, first out, each
// handed the lock directly. The workers of a subscription take turns at
// the queue through it: with sync.Mutex (first in, first out) every one of
// a thousand idle workers would take the next message in turn, each with
// a cold cache and a stack the collector shrank since its last message,
// grown again on the spot. Last in, first out keeps the few workers the
// load needs busy and lets the others sleep (issue 17: with the demo's
// 1024 workers this was a fifth of the memory path's CPU).
//
// Lock cannot be abandoned, as sync.Mutex's cannot: a holder that stops
// unlocks, and so on down the waiters.
type lifoMutex struct {
	mu      sync.Mutex
	locked  bool
	waiters []chan struct{} // a stack; each chan has room for one wake-up
}

// lock takes the mutex, waiting on wake (the caller's own, capacity 1,
// empty) while another holds it.
func (l *lifoMutex) lock(wake chan struct{}) {
	l.mu.Lock()
	if !l.locked {
		l.locked = true
		l.mu.Unlock()
		return
	}
	l.waiters = append(l.waiters, wake)
	l.mu.Unlock()
	<-wake // the lock is ours: unlock handed it over without releasing it
}

// unlock hands the mutex to the latest waiter, or releases it.
func (l *lifoMutex) unlock() {
	l.mu.Lock()
	n := len(l.waiters)
	if n == 0 {
		l.locked = false
		l.mu.Unlock()
		return
	}
	w := l.waiters[n-1]
	l.waiters[n-1] = nil
	l.waiters = l.waiters[:n-1]
	l.mu.Unlock()
	w <- struct{}{}
}
