package gateway

import "sync"

// hub wakes the goroutines of this node waiting for a stored result (long
// polls, idempotent retries attached to a request in flight) when the result
// changes. Waking is only a hint: a woken waiter reads the store again, so a
// wake-up without a change costs one read, and a change made before the
// waiter subscribed is seen by the read it does after subscribing.
type hub struct {
	mu      sync.Mutex
	waits   map[string]*hubEntry
	closed  chan struct{}
	closing sync.Once
}

type hubEntry struct {
	ch   chan struct{} // closed by notify
	refs int
}

func newHub() *hub {
	return &hub{waits: make(map[string]*hubEntry), closed: make(chan struct{})}
}

// subscribe returns a channel closed at the next notify(id); the caller must
// call release(id, e) when it stops waiting.
func (h *hub) subscribe(id string) *hubEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.waits[id]
	if !ok {
		e = &hubEntry{ch: make(chan struct{})}
		h.waits[id] = e
	}
	e.refs++
	return e
}

func (h *hub) release(id string, e *hubEntry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e.refs--
	if e.refs == 0 && h.waits[id] == e {
		delete(h.waits, id)
	}
}

// notify wakes every waiter of id.
func (h *hub) notify(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.waits[id]; ok {
		delete(h.waits, id)
		close(e.ch)
	}
}

// len returns how many ids have waiters (tests assert it returns to 0).
func (h *hub) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.waits)
}

// close wakes every waiter for good (shutdown).
func (h *hub) close() { h.closing.Do(func() { close(h.closed) }) }
