package nats

// Core NATS subscriptions: a queue subscription (or, for an inbox, a plain
// one) whose messages are handed to the pool, retried in place on a
// handler error, and handed back to the subject when the subscription
// stops before handling them.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/syncgate/syncgate/brokers"
)

// Inbox probing: how long one probe waits for an answer, and how long a
// new inbox subscription retries while the subject is answered (a
// subscription being closed, such as a cluster node handing an adopted
// inbox back, is gone by then).
const (
	probeTimeout = 500 * time.Millisecond
	inUseGrace   = 3 * time.Second
)

func (s *subscription) runCore(ctx context.Context) error {
	if s.sc.Inbox {
		if err := s.claimInbox(ctx); err != nil {
			return err
		}
	}
	p := newPool(s.sc.Concurrency, 0, s.sc.Inbox, func(d delivery) { s.processCore(ctx, d) })
	cb := func(msg *natsgo.Msg) {
		if s.sc.Inbox && msg.Reply != "" && msg.Header.Get(probeHeader) != "" {
			_ = msg.Respond(nil) // this subject is in use
			return
		}
		if d := (delivery{raw: msg}); !p.submit(ctx, d) {
			s.abandon(d)
		}
	}
	var (
		sub *natsgo.Subscription
		err error
	)
	if s.sc.Inbox {
		sub, err = s.c.nc.Subscribe(s.source, cb)
	} else {
		sub, err = s.c.nc.QueueSubscribe(s.source, queueName(s.group), cb)
	}
	if err != nil {
		p.stop()
		if s.c.ctx.Err() != nil {
			return fmt.Errorf("nats: subscribe %q: %w", s.source, brokers.ErrClosed)
		}
		return fmt.Errorf("%w: nats: subscribe %q: %v", brokers.ErrUnavailable, s.source, err)
	}
	delivering := make(chan struct{}) // closed when nats.go's delivery goroutine for sub ended
	sub.SetClosedHandler(func(string) { close(delivering) })
	// The server has the subscription once a round trip after it returned.
	if s.flush(ctx) {
		s.ready()
	}
	<-ctx.Done()
	s.consuming.Store(false)
	if sub.Unsubscribe() == nil {
		// cb may be running: let it finish, so that everything it took is
		// in handBack before that is published.
		<-delivering
	}
	p.stop()
	s.handBackAll()
	return nil
}

// flush waits until the server confirmed everything sent so far, over
// reconnections (nats.go subscribes again after one), or ctx ends (false).
func (s *subscription) flush(ctx context.Context) bool {
	for {
		fctx, cancel := context.WithTimeout(ctx, s.c.cfg.DialTimeout)
		err := s.c.nc.FlushWithContext(fctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return false
		case err == nil:
			return true
		}
		s.log.Debug("nats: subscription not confirmed yet; waiting for the connection", slog.Any("error", err))
		if !sleep(ctx, s.c.cfg.ReconnectInterval) {
			return false
		}
	}
}

// processCore hands d to the handler until it succeeds, retrying in place,
// or MaxDeliveries attempts failed (then it is dead-lettered), or ctx ends
// (then it is abandoned).
func (s *subscription) processCore(ctx context.Context, d delivery) {
	ref := d.ref()
	var body []byte
	fetched := ref == ""
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			s.abandon(d)
			return
		}
		var err error
		if !fetched {
			body, err = s.fetchBody(ctx, ref)
			fetched = err == nil
		}
		if fetched {
			if err = s.h(ctx, d.message(body)); err == nil {
				s.confirm(d)
				return
			}
		}
		if ctx.Err() != nil {
			s.abandon(d) // stopped while handling: not an attempt that failed
			return
		}
		if isGone(err) || attempt >= s.c.cfg.MaxDeliveries {
			// A failed dead-letter publish is logged: core NATS cannot
			// hold the message anyway, and the callback lets the caller
			// be answered.
			_ = s.deadLetter(ctx, d, err)
			s.sc.DeadLetter(ctx, d.message(body), err)
			return
		}
		if !sleep(ctx, s.retryDelay(attempt)) {
			s.abandon(d)
			return
		}
	}
}

// confirm answers a reply published in jetstream mode (a request: see
// Client.Publish) once the handler took it, so that the service
// acknowledges its request. A message without a reply subject (core mode,
// a publisher in another language) needs no answer. A reply that is not
// answered (the handler failed every attempt, the subscription stopped)
// is published again by the service until its request's deadline.
func (s *subscription) confirm(d delivery) {
	if d.raw.Reply != "" && s.c.cfg.Mode == ModeJetStream {
		_ = d.raw.Respond(nil)
	}
}

// abandon keeps a message the subscription took but did not handle: a
// jetstream delivery to be nakked (nakAbandoned), a core message to be
// published back to the subject (to the group's other members) once the
// subscription is gone (handBackAll). An inbox has no other members: its
// message is dropped.
func (s *subscription) abandon(d delivery) {
	if d.js != nil {
		s.mu.Lock()
		s.abandoned = append(s.abandoned, d)
		s.mu.Unlock()
		return
	}
	if s.sc.Inbox {
		s.log.Debug("nats: reply dropped: the inbox subscription stopped before handling it",
			slog.String("correlation_id", d.correlationID()))
		return
	}
	s.mu.Lock()
	s.handBack = append(s.handBack, d.raw)
	s.mu.Unlock()
}

// handBackAll publishes the abandoned messages back to the subject, in the
// order they were taken: best effort, for the group's other members.
func (s *subscription) handBackAll() {
	s.mu.Lock()
	msgs := s.handBack
	s.handBack = nil
	s.mu.Unlock()
	failed := 0
	for _, m := range msgs {
		// The reply subject goes along: the member that handles it
		// confirms a jetstream-mode reply.
		if err := s.c.nc.PublishMsg(&natsgo.Msg{Subject: s.source, Reply: m.Reply, Header: m.Header, Data: m.Data}); err != nil {
			failed++
		}
	}
	if len(msgs) > 0 {
		s.log.Info("nats: subscription stopped; unhandled messages published back to the subject",
			slog.Int("messages", len(msgs)), slog.Int("failed", failed))
	}
}

// claimInbox returns nil once no other process answers probes on the
// inbox subject, or an error wrapping brokers.ErrInUse if one still does
// after inUseGrace. A subscriber that does not answer probes (a tool, a
// foreign consumer) does not count.
func (s *subscription) claimInbox(ctx context.Context) error {
	deadline := time.Now().Add(inUseGrace)
	for {
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		_, err := s.c.nc.RequestMsgWithContext(pctx, &natsgo.Msg{
			Subject: s.source, Header: natsgo.Header{probeHeader: []string{"1"}},
		})
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, natsgo.ErrNoResponders):
			return nil
		case err != nil:
			s.log.Debug("nats: inbox probe unanswered; subscribing", slog.Any("error", err))
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("nats: subscribe %q: %w: another process answers on this reply subject", s.source, brokers.ErrInUse)
		}
		if !sleep(ctx, probeTimeout/2) {
			return nil
		}
	}
}

// queueName is the core queue group of group: as it is, unless it holds
// characters a queue name cannot.
func queueName(group string) string {
	if checkSubject(group) == nil {
		return group
	}
	return consumerName(group)
}
