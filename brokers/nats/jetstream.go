package nats

// JetStream subscriptions: the source's work-queue stream and the group's
// durable pull consumer, created if missing; a fetch loop hands messages to
// the pool; each delivery is acked, nakked with a delay, or dead-lettered.
// The loop declares stream and consumer again when the consumer vanished,
// e.g. a memory stream lost in a server restart.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncgate/syncgate/brokers"
)

// A jetstream subscription pulls with one fetch at a time, each open for
// at most fetchExpiry (then the next one starts) and ended early when the
// server's heartbeats stop for twice fetchHeartbeat (a lost connection or
// request). nats.go's Consume is not used: its pending-request bookkeeping
// can miss a pull when messages arrive faster than it clears its
// fetch-in-progress flag (small batches, a fast server), leaving the
// subscription idle until its 30 s heartbeat check.
//
// A stopping subscription reads its last fetch until the server ends it:
// the server counts what it sent to the fetch as delivered, and what the
// fetch no longer reads would wait out AckWait. fetchExpiry therefore
// bounds how long a stop (and Close) takes; an idle subscription pulls
// again every fetchExpiry.
const (
	fetchExpiry    = time.Second
	fetchHeartbeat = fetchExpiry / 2 // nats.go's largest for the expiry
)

func (s *subscription) runJetStream(ctx context.Context) error {
	batch := max(s.c.cfg.Prefetch, s.sc.Concurrency)
	// Room for a whole fetch beside the running handlers: the fetch loop
	// takes every message as it arrives (and keeps it alive) instead of
	// leaving some unread behind a full pool, where AckWait runs.
	p := newPool(s.sc.Concurrency, batch, false, func(d delivery) { s.processJS(ctx, d) })
	defer s.consuming.Store(false)
	// Deliveries taken but not handled are nakked only once the pull loop
	// returned, which is after its last fetch ended: a nak before that
	// could have the server redeliver to that fetch, which is going away.
	defer s.nakAbandoned()
	defer p.stop()
	backoff := s.c.cfg.RetryDelay
	warned := false
	var cons jetstream.Consumer
	for {
		var err error
		if cons == nil {
			cons, err = s.declare(ctx)
		}
		if err == nil {
			if warned {
				s.log.Info("nats: consuming")
			}
			backoff, warned = s.c.cfg.RetryDelay, false
			s.ready()
			err = s.fetch(ctx, cons, batch, p)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			continue
		case consumerGone(err):
			s.consuming.Store(false)
			s.log.Warn("nats: consumer gone; declaring it again", slog.Any("error", err))
			cons = nil
			continue
		case fatal(err):
			return fmt.Errorf("nats: subscribe %q (group %q): %w", s.source, s.group, err)
		case s.c.nc.IsClosed():
			if s.c.ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%w: nats: subscribe %q: connection closed", brokers.ErrUnavailable, s.source)
		case !s.c.nc.IsConnected():
			s.consuming.Store(false)
			if !s.c.awaitConnected(ctx) {
				return nil
			}
			continue
		case errors.Is(err, jetstream.ErrNoHeartbeat):
			// The request was lost, or the consumer is gone without a
			// word (JetStream 2.9 may leave a deleted consumer's pull
			// subject answered by nobody and yet not "no responders").
			s.log.Debug("nats: fetch lost its heartbeats; declaring the consumer and pulling again")
			cons = nil
			continue
		}
		s.consuming.Store(false)
		if !warned {
			s.log.Warn("nats: cannot consume; retrying", slog.Any("error", err))
			warned = true
		}
		cons = nil
		if !sleep(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, s.c.cfg.MaxRetryDelay)
	}
}

// fetch pulls up to n messages within fetchExpiry, once the pool has room
// for them all, and hands them to the pool. When ctx ends it goes on
// reading until the server ends the fetch (expiry, filled, or its
// heartbeats stop) and abandons what comes, to be nakked once the pull
// loop returned: cancelling the fetch would leave what the server sent it
// unread, redelivered only after AckWait. nil: the fetch expired or was
// filled.
func (s *subscription) fetch(ctx context.Context, cons jetstream.Consumer, n int, p *pool) error {
	if !p.awaitRoom(ctx, n) || ctx.Err() != nil {
		return nil
	}
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(fetchExpiry), jetstream.FetchHeartbeat(fetchHeartbeat))
	if err != nil {
		return err
	}
	for jm := range batch.Messages() {
		d := delivery{js: jm, alive: keepAlive(jm, s.c.cfg.AckWait/2)}
		if !p.submit(ctx, d) {
			s.abandon(d)
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// consumerGone reports whether err says the durable consumer (or its
// stream) no longer exists: it is declared again.
func consumerGone(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, natsgo.ErrNoResponders)
}

// processJS hands one delivery to the handler and settles it: ack on
// success (and delete its body object), nak without delay when the
// subscription is stopping, dead-letter on the MaxDeliveries-th failure,
// else nak with the retry delay. Until then (since fetch took it) the
// delivery is kept from AckWait's redelivery by in-progress acks.
func (s *subscription) processJS(ctx context.Context, d delivery) {
	if ctx.Err() != nil {
		s.abandon(d)
		return
	}
	n, limit := 1, s.c.cfg.MaxDeliveries
	if md, err := d.js.Metadata(); err == nil {
		n = int(md.NumDelivered)
	}
	if n > limit {
		d.release()
		s.giveUp(ctx, d, nil, n, fmt.Errorf("nats: delivered %d times (max_deliveries %d); the last attempts ended unsettled, their consumer stopped or vanished while handling it", n, limit))
		return
	}
	ref := d.ref()
	var (
		body []byte
		err  error
	)
	if ref != "" {
		body, err = s.fetchBody(ctx, ref)
	}
	if err == nil {
		err = s.h(ctx, d.message(body))
	}
	if ctx.Err() == nil || err == nil {
		d.release() // an abandoned delivery stays alive until it is nakked
	}
	switch {
	case err == nil:
		if aerr := d.js.Ack(); aerr != nil {
			s.log.Debug("nats: ack failed; the message comes again after ack_wait", slog.Any("error", aerr))
		} else if ref != "" {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.c.cfg.ConfirmTimeout)
			s.c.bodies.remove(rctx, ref)
			cancel()
		}
	case ctx.Err() != nil:
		s.abandon(d) // stopped while handling: back to another consumer
	case isGone(err) || n >= limit:
		s.giveUp(ctx, d, body, n, err)
	default:
		_ = d.js.NakWithDelay(s.retryDelay(n))
	}
}

// nakAbandoned naks the deliveries the subscription took but did not
// handle, so that another consumer of the group gets them now.
func (s *subscription) nakAbandoned() {
	s.mu.Lock()
	abandoned := s.abandoned
	s.abandoned = nil
	s.mu.Unlock()
	for _, d := range abandoned {
		d.release()
		_ = d.js.Nak()
	}
}

// giveUp dead-letters d and then removes it from the work queue (an ack:
// JetStream 2.9 keeps a terminated message in a work-queue stream), or,
// when the dead letter could not be published, naks it for a later try.
func (s *subscription) giveUp(ctx context.Context, d delivery, body []byte, n int, cause error) {
	if err := s.deadLetter(ctx, d, cause); err != nil {
		_ = d.js.NakWithDelay(s.retryDelay(n)) // it comes back with n > MaxDeliveries
		return
	}
	s.sc.DeadLetter(ctx, d.message(body), cause)
	_ = d.js.Ack()
}

// keepAlive sends in-progress acks for m every interval until stop is
// called, so a handler running longer than AckWait keeps its delivery.
func keepAlive(m jetstream.Msg, interval time.Duration) (stop func()) {
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
	)
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(interval, func() {
		_ = m.InProgress()
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(interval)
		}
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// declare creates (or finds) the source's stream, the dead-letter stream
// and the group's durable consumer.
func (s *subscription) declare(ctx context.Context) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, s.c.cfg.ConfirmTimeout)
	defer cancel()
	cfg := s.c.cfg
	st, err := s.c.stream(ctx, jetstream.StreamConfig{
		Name:        cfg.StreamName(s.source),
		Description: "syncgate: requests to " + s.source,
		Subjects:    []string{s.source},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     s.c.storage(),
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, err
	}
	if _, err := s.c.stream(ctx, jetstream.StreamConfig{
		Name:        cfg.deadLetterStream(),
		Description: "syncgate: messages given up on",
		Subjects:    []string{cfg.DeadLetter},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      cfg.DeadLetterMaxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	}); err != nil {
		return nil, err
	}
	name := consumerName(s.group)
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "syncgate group " + s.group,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1, // the subscription dead-letters after MaxDeliveries itself
		MaxAckPending: max(1000, 4*max(cfg.Prefetch, s.sc.Concurrency)),
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeWorkQueueTaken {
		return nil, fmt.Errorf("stream %s is a work queue consumed by another group already; in jetstream mode a subject has one group: %w",
			st.CachedInfo().Config.Name, err)
	}
	return cons, err
}

// errCodeWorkQueueTaken is the JetStream error a work-queue stream gives a
// second consumer without a filter ("multiple non-filtered consumers not
// allowed on workqueue stream").
const errCodeWorkQueueTaken = 10099

// errConflict marks a stream of the expected name that does not fit.
var errConflict = errors.New("nats: conflicting stream")

// stream creates the stream cfg describes, or returns the one of that name
// if it exists already (possibly with other settings an operator chose),
// provided it captures cfg's subjects.
func (c *Client) stream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	st, err := c.js.CreateStream(ctx, cfg)
	if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return st, err
	}
	if st, err = c.js.Stream(ctx, cfg.Name); err != nil {
		return nil, err
	}
	for _, subj := range cfg.Subjects {
		if !slices.Contains(st.CachedInfo().Config.Subjects, subj) {
			return nil, fmt.Errorf("%w: stream %s exists but does not capture subject %q (it captures %q)", errConflict, cfg.Name, subj, st.CachedInfo().Config.Subjects)
		}
	}
	return st, nil
}

// fatal reports whether a declaration or fetch error is the server's
// refusal (a conflicting stream or consumer, a missing permission, no
// JetStream), which retrying does not cure, as opposed to an outage.
func fatal(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code >= 400 && apiErr.Code < 500 || errors.Is(err, jetstream.ErrJetStreamNotEnabled)
	}
	return errors.Is(err, errConflict) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, natsgo.ErrPermissionViolation) || errors.Is(err, jetstream.ErrInvalidOption)
}
