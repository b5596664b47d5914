package memory

import (
	"sync"
	"sync/atomic"

	"github.com/syncgate/syncgate/brokers"
)

// topic is one destination: the groups that each get every message.
type topic struct {
	queueSize int

	mu     sync.Mutex               // serialises join
	groups atomic.Pointer[[]*group] // copy on write: Publish reads it without locking
}

func newTopic(queueSize int) *topic {
	t := &topic{queueSize: queueSize}
	// The backlog: it holds what is published before anyone subscribes and
	// becomes the first group that joins, whatever its name.
	t.groups.Store(&[]*group{newGroup(queueSize)})
	return t
}

// join returns the group named name, creating it (or claiming the backlog)
// when it does not exist yet.
func (t *topic) join(name string) *group {
	t.mu.Lock()
	defer t.mu.Unlock()
	groups := *t.groups.Load()
	for _, g := range groups {
		if g.claimed && g.name == name {
			return g
		}
	}
	if len(groups) == 1 && !groups[0].claimed {
		g := groups[0]
		g.name, g.claimed = name, true
		return g
	}
	g := newGroup(t.queueSize)
	g.name, g.claimed = name, true
	next := append(groups[:len(groups):len(groups)], g)
	t.groups.Store(&next)
	return g
}

// group is the queue of one consumer group on one destination. Its
// subscriptions compete for the messages in queue. Messages a stopped
// subscription gives back go to redo, which is served first, so that they
// keep their place ahead of everything still queued.
type group struct {
	name    string // guarded by topic.mu
	claimed bool   // guarded by topic.mu

	queue chan brokers.Message

	redoMu  sync.Mutex
	redo    []brokers.Message
	nRedo   atomic.Int64  // len(redo), read without the lock on the hot path
	redoSig chan struct{} // cap 1: redo may be non-empty
}

func newGroup(queueSize int) *group {
	return &group{
		queue:   make(chan brokers.Message, queueSize),
		redoSig: make(chan struct{}, 1),
	}
}

// take returns the next message, or false once done is closed.
func (g *group) take(done <-chan struct{}) (brokers.Message, bool) {
	for {
		select {
		case <-done:
			return brokers.Message{}, false
		default:
		}
		if g.nRedo.Load() > 0 {
			if m, ok := g.popRedo(); ok {
				return m, true
			}
		}
		select {
		case m := <-g.queue:
			return m, true
		case <-g.redoSig:
		case <-done:
			return brokers.Message{}, false
		}
	}
}

func (g *group) popRedo() (brokers.Message, bool) {
	g.redoMu.Lock()
	defer g.redoMu.Unlock()
	if len(g.redo) == 0 {
		return brokers.Message{}, false
	}
	m := g.redo[0]
	g.redo[0] = brokers.Message{}
	g.redo = g.redo[1:]
	g.nRedo.Add(-1)
	if len(g.redo) > 0 {
		g.signalRedo()
	}
	return m, true
}

// giveBack puts unacknowledged messages, in their order, back at the front
// of the group.
func (g *group) giveBack(ms ...brokers.Message) {
	if len(ms) == 0 {
		return
	}
	g.redoMu.Lock()
	redo := make([]brokers.Message, 0, len(ms)+len(g.redo))
	g.redo = append(append(redo, ms...), g.redo...)
	g.nRedo.Add(int64(len(ms)))
	g.redoMu.Unlock()
	g.signalRedo()
}

func (g *group) signalRedo() {
	select {
	case g.redoSig <- struct{}{}:
	default:
	}
}
