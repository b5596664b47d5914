package nats

import (
	"bytes"
	"context"
	"hash/maphash"
	"sync"

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
// that hash to them, in the order they came. Otherwise each message gets a
// goroutine of its own once one of n slots is free: for fast handlers that
// keeps few goroutines around, where n parked workers would each be woken
// in turn (BenchmarkRoundTrip, core, 64 in flight: 13-16k round trips/s
// with 64 parked workers, 18-27k like this, on a loaded 2-core machine).
// submit and stop may race: submit after stop refuses the message.
type pool struct {
	lanes []chan delivery
	seed  maphash.Seed
	wg    sync.WaitGroup
	work  func(delivery)
	slots chan struct{} // without lanes: one per running handler

	mu     sync.RWMutex // held for reading by submit, for writing by stop
	closed bool
}

// newPool returns a pool calling work for each delivery; work must settle
// it (abandon it when the subscription's context has ended).
func newPool(n int, lanes bool, work func(delivery)) *pool {
	p := &pool{seed: maphash.MakeSeed(), work: work}
	if !lanes {
		p.slots = make(chan struct{}, n)
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
		p.wg.Go(func() {
			defer func() { <-p.slots }()
			p.work(d)
		})
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
	p.wg.Wait()
}
