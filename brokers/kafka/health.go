package kafka

import (
	"log/slog"
	"sync"
	"time"
)

// inboxState is where a reply inbox stands, for Ready and for the log.
type inboxState int

const (
	inboxStarting inboxState = iota // not yet positioned
	inboxUp                         // positioned, broker answering, topic as we left it
	inboxDown                       // the broker does not answer
	inboxLost                       // the topic or its offsets are gone: being recreated
)

// inboxHealth tracks one inbox subscription. It logs one line per change
// of state (a warning when the inbox stops serving, an info line when it
// serves again), never one per failed attempt: an outage of an hour is two
// lines, not thousands.
type inboxHealth struct {
	log *slog.Logger

	mu     sync.Mutex
	state  inboxState
	since  time.Time // when the inbox last stopped serving
	reason string
}

func newInboxHealth(log *slog.Logger) *inboxHealth {
	return &inboxHealth{log: log, since: time.Now()}
}

// ok reports whether the inbox is positioned and its broker answers.
func (h *inboxHealth) ok() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state == inboxUp
}

// up records that the inbox serves (again).
func (h *inboxHealth) up() {
	h.mu.Lock()
	prev, since, reason := h.state, h.since, h.reason
	h.state, h.reason = inboxUp, ""
	h.mu.Unlock()
	switch prev {
	case inboxDown:
		h.log.Info("kafka: broker reachable again, reply inbox serving", "down_for", time.Since(since).Round(time.Millisecond), "cause", reason)
	case inboxLost:
		h.log.Info("kafka: reply topic recovered, reply inbox serving from the start of the new topic", "down_for", time.Since(since).Round(time.Millisecond), "cause", reason)
	}
}

// down records that the broker does not answer. Logged once, when the
// inbox was serving.
func (h *inboxHealth) down(err error) {
	h.mu.Lock()
	prev := h.state
	if prev == inboxUp || prev == inboxStarting {
		h.state, h.reason = inboxDown, err.Error()
		if prev == inboxUp {
			h.since = time.Now()
		}
	}
	h.mu.Unlock()
	switch prev {
	case inboxUp:
		h.log.Warn("kafka: broker unreachable, reply inbox not serving (replies wait on the broker)", "err", err)
	case inboxStarting:
		h.log.Warn("kafka: broker unreachable, reply inbox not positioned yet", "err", err)
	}
}

// lost records that the topic, its records or its committed offsets are
// gone: the broker came back empty, or the topic was deleted.
func (h *inboxHealth) lost(reason string) {
	h.mu.Lock()
	prev := h.state
	if prev != inboxLost {
		if prev == inboxUp {
			h.since = time.Now()
		}
		h.state, h.reason = inboxLost, reason
	}
	h.mu.Unlock()
	if prev != inboxLost {
		h.log.Warn("kafka: reply topic lost (broker restarted empty or topic deleted); recreating it and reading it from its beginning", "cause", reason)
	}
}

// failing reports whether the inbox cannot serve: its broker does not
// answer, or its topic is being recreated. An inbox still starting (taking
// its lock, positioning for the first time) is not failing: the gateway
// reports that through its own check, and a cluster node adopting a dead
// node's reply topic stays ready meanwhile.
func (h *inboxHealth) failing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state == inboxDown || h.state == inboxLost
}

// track registers h for Ready until the returned func is called.
func (s *Subscriber) track(h *inboxHealth) func() {
	s.mu.Lock()
	if s.inboxes == nil {
		s.inboxes = make(map[*inboxHealth]struct{})
	}
	s.inboxes[h] = struct{}{}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.inboxes, h)
		s.mu.Unlock()
	}
}

// Ready reports whether the reply inboxes (brokers.AsInbox) of this
// Subscriber can serve: false while an inbox's broker does not answer (from
// within about a second of it becoming unreachable, dial_timeout more when
// it does not refuse connections,
// and from the first failed attempt when it is unreachable at start) and
// while a lost reply topic is being recreated; true again within about a
// second of the broker answering. An inbox still starting (joining its
// lock, positioning) does not make it false: the Ready callback of
// Subscribe says when an inbox is positioned. A Subscriber without an
// inbox subscription is ready. The gateway node's /readyz reports it as
// the check "broker".
func (s *Subscriber) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for h := range s.inboxes {
		if h.failing() {
			return false
		}
	}
	return true
}

// Ready reports the Subscriber's Ready: whether the node's reply inbox is
// positioned and its broker answers (see Subscriber.Ready).
func (b *Broker) Ready() bool { return b.Subscriber.Ready() }
