package nats

import (
	"bytes"
	"context"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
)

// delivery is one NATS message a subscription took: raw in core mode, js
// in jetstream mode. It is decoded afresh for every handler call (see
// message), so a handler's changes to its copy reach nothing else.
type delivery struct {
	raw *natsgo.Msg
	js  jetstream.Msg
	// alive stops the in-progress acks that keep a jetstream delivery
	// from AckWait's redelivery from the moment it was taken (nil in core
	// mode); idempotent.
	alive func()
}

// release stops d's in-progress acks, before it is settled.
func (d delivery) release() {
	if d.alive != nil {
		d.alive()
	}
}

func (d delivery) header() natsgo.Header {
	if d.js != nil {
		return d.js.Headers()
	}
	return d.raw.Header
}

func (d delivery) data() []byte {
	if d.js != nil {
		return d.js.Data()
	}
	return d.raw.Data
}

// message decodes d into a message of its own; body is its body when it
// travels in the body bucket (copied too).
func (d delivery) message(body []byte) brokers.Message {
	m, ref := decode(d.header(), d.data())
	if ref != "" && len(body) > 0 {
		m.Body = bytes.Clone(body)
	}
	return m
}

// ref is the body bucket reference d carries instead of a body, if any.
func (d delivery) ref() string { return first(d.header()[bodyHeader]) }

// correlationID is d's correlation-id header as it travels. Reply inboxes
// hash it to pick a lane.
func (d delivery) correlationID() string { return first(d.header()[envelope.CorrelationID]) }

// laneBuffer is how many messages wait in one inbox lane, so that a busy
// lane holds up the others only once it is this far behind.
const laneBuffer = 16

// pool runs a subscription's handlers, at most n at once. With lanes (a
// reply inbox), n goroutines each serve the messages of the correlation ids
// that hash to them, in the order they came.
//
// Without lanes, messages wait in a queue that readers take them from, one
// after the other, and a reader is woken (or started, up to n) only when
// none is awake, or when a message has waited escapeAfter behind busy
// readers. Why: a handler's reply is a publish, and nats.go writes what was
// published when its flusher goroutine next runs; one reader going through
// a burst of fast handlers publishes every reply before that happens, so
// that they leave in one write, as they do when nats.go's own responder
// answers from its callback. A goroutine a message (or a worker woken for
// each) let the flusher run between two handlers, one write (and the
// server's read and write of it) a reply: for BenchmarkRoundTrip's client,
// core, 64 in flight, 1.5 write syscalls a round trip against 0.7, and 30
// µs of CPU a round trip against 23 (perf stat, 50 000 round trips). Slow
// handlers still get n goroutines: messages that wait escapeAfter behind
// busy readers wake one each.
// submit and stop may race: submit after stop refuses the message.
type pool struct {
	lanes []chan delivery
	seed  maphash.Seed
	wg    sync.WaitGroup
	work  func(delivery)
	n     int

	mu     sync.RWMutex // held for reading by submit, for writing by stop
	closed bool

	// Without lanes.
	slots   chan struct{} // one per message taken and not yet handled
	qmu     sync.Mutex    // guards what follows
	queue   []delivery    // taken, not yet handled, in the order they came
	readers int           // reader goroutines alive
	awake   int           // of which not parked
	parked  []chan struct{}
	escape  *time.Timer // wakes more readers when the queue waits
	armed   bool        // escape runs unless it finds the queue empty
	done    bool        // stop: readers exit once the queue is empty
}

const (
	// escapeAfter is how long a message waits behind busy readers before
	// more readers are woken: the handlers are slow, not the hand-off.
	escapeAfter = 500 * time.Microsecond
	// idleFor is how long a parked reader waits before it exits.
	idleFor = 5 * time.Second
)

// newPool returns a pool calling work for each delivery; work must settle
// it (abandon it when the subscription's context has ended). Without
// lanes, up to n+queued messages are taken at once: n handled, the others
// queued.
func newPool(n, queued int, lanes bool, work func(delivery)) *pool {
	p := &pool{seed: maphash.MakeSeed(), work: work, n: n}
	if !lanes {
		p.slots = make(chan struct{}, n+queued)
		p.escape = time.AfterFunc(time.Hour, p.unblock)
		p.escape.Stop()
		return p
	}
	p.lanes = make([]chan delivery, n)
	for i := range p.lanes {
		p.lanes[i] = make(chan delivery, laneBuffer)
	}
	for _, lane := range p.lanes {
		p.wg.Go(func() {
			for d := range lane {
				work(d)
			}
		})
	}
	return p
}

// submit hands d to a handler goroutine, waiting for room until ctx ends.
// false: d was not taken (ctx ended, or the pool stopped) and the caller
// settles it.
func (p *pool) submit(ctx context.Context, d delivery) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed || ctx.Err() != nil {
		return false
	}
	if p.slots != nil {
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		p.qmu.Lock()
		p.queue = append(p.queue, d)
		if p.awake == 0 {
			p.wakeLocked(1)
		} else if !p.armed {
			p.armed = true
			p.escape.Reset(escapeAfter)
		}
		p.qmu.Unlock()
		return true
	}
	lane := p.lanes[laneOf(p.seed, d.correlationID(), len(p.lanes))]
	select {
	case lane <- d:
		return true
	case <-ctx.Done():
		return false
	}
}

// awaitRoom returns true once k messages can be submitted without
// waiting, false if ctx ends first. Only one goroutine may submit to a
// pool that is waited on so (the others only free room), and k must not
// exceed the queued room newPool was given.
func (p *pool) awaitRoom(ctx context.Context, k int) bool {
	taken := 0
	defer func() {
		for range taken {
			<-p.slots
		}
	}()
	for ; taken < k; taken++ {
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// unblock runs escapeAfter after a message was queued behind busy readers:
// if messages still wait, it wakes a reader for each.
func (p *pool) unblock() {
	p.qmu.Lock()
	defer p.qmu.Unlock()
	p.armed = false
	if !p.done && len(p.queue) > 0 {
		p.wakeLocked(len(p.queue))
	}
}

// wakeLocked wakes k parked readers, or starts them, as many as n allows.
func (p *pool) wakeLocked(k int) {
	for ; k > 0 && p.awake < p.n; k-- {
		p.awake++
		if i := len(p.parked) - 1; i >= 0 {
			wake := p.parked[i]
			p.parked = p.parked[:i]
			wake <- struct{}{}
			continue
		}
		p.readers++
		p.wg.Go(p.reader)
	}
}

// reader handles queued messages until the queue is empty, then parks
// until woken; it exits after idleFor parked, or once stop was called and
// the queue is empty.
func (p *pool) reader() {
	wake := make(chan struct{}, 1)
	idle := time.NewTimer(idleFor)
	defer idle.Stop()
	p.qmu.Lock()
	for {
		if len(p.queue) > 0 {
			d := p.queue[0]
			p.queue[0] = delivery{}
			p.queue = p.queue[1:]
			p.qmu.Unlock()
			p.work(d)
			<-p.slots
			p.qmu.Lock()
			continue
		}
		p.awake--
		if p.done {
			p.readers--
			p.qmu.Unlock()
			return
		}
		p.parked = append(p.parked, wake)
		p.qmu.Unlock()
		idle.Reset(idleFor)
		select {
		case <-wake:
			p.qmu.Lock()
			continue
		case <-idle.C:
		}
		p.qmu.Lock()
		if i := slices.Index(p.parked, wake); i >= 0 {
			p.parked = slices.Delete(p.parked, i, i+1)
			p.readers--
			p.qmu.Unlock()
			return
		}
		<-wake // woken as the timer fired: awake was counted for this reader
	}
}

// stop makes submit refuse, lets the goroutines finish what they hold
// (work sees the ended context and abandons it) and waits for them. The
// context submit was given must have ended.
func (p *pool) stop() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		for _, l := range p.lanes {
			close(l)
		}
	}
	p.mu.Unlock()
	if p.slots != nil {
		p.escape.Stop()
		p.qmu.Lock()
		p.done = true
		for _, wake := range p.parked {
			p.awake++ // each wakes, finds the queue empty and exits
			wake <- struct{}{}
		}
		p.parked = nil
		p.qmu.Unlock()
	}
	p.wg.Wait()
}
