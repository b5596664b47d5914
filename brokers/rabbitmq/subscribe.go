package rabbitmq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
)

// maxSetupFailures bounds consecutive failed setups (declare, qos, consume)
// on an open connection that the broker did not refuse outright; past it
// Subscribe returns the error.
const maxSetupFailures = 5

var tagSeq atomic.Uint64

// Subscribe consumes the queue for source until ctx ends or Close, calling h
// on up to Concurrency goroutines; each delivery is acknowledged after h
// returns nil and, after an error, nacked with requeue (on a classic work
// queue: acked once a copy counting one more attempt is queued), out of
// order, by delivery tag; an error wrapping brokers.ErrUnavailable is
// retried first, the delivery held (see hold). On the last attempt the
// DeadLetter callback gets the failed message. Subscribe declares the topology it needs (see the
// package doc): a durable quorum (or classic, with QueueType) queue named
// source (or the group, with an exchange), dead-lettering after
// MaxDeliveries; with AsInbox, a durable reply queue with x-expires, or
// direct reply-to when configured. Ready is
// called once the consumer is registered. A broker outage is waited out; the
// consumer resumes after recovery. Subscribe returns nil when ctx ends, after
// its in-flight handlers returned.
func (c *Client) Subscribe(ctx context.Context, source string, h brokers.Handler, opts ...brokers.SubscribeOption) error {
	sc := brokers.NewSubscribeConfig(opts...)
	if source == "" {
		return errors.New("rabbitmq: subscribe: empty source")
	}
	queue := source
	if sc.Group != "" && !sc.Inbox && c.cfg.Exchange != "" {
		queue = sc.Group
	}
	if err := c.enter(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		c.subsWG.Done()
		return nil
	}
	defer c.subsWG.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()

	if sc.Inbox && c.cfg.DirectReplyTo {
		return c.subscribeDirect(ctx, source, h, sc)
	}
	s := &subscription{c: c, source: source, queue: queue, sc: sc, log: c.log.With(slog.String("queue", queue))}
	c.track(s, true)
	defer c.track(s, false)
	if err := s.connect(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer s.close()
	return s.run(ctx, h)
}

// subscription is one Subscribe call on its own connection and channel.
//
// amqp091-go recovers the connection and reopens the channel, but topology
// recovery is disabled on this connection and the subscription re-runs its
// own declare/qos/consume with a fresh consumer tag after every reopen. The
// library's consumer recovery would re-subscribe under the old tag into the
// old delivery channel, and a handler finishing after the recovery would then
// ack its pre-outage delivery tag on the new channel, where tags restart at
// 1: the broker closes the channel (406 unknown delivery tag) or, worse, the
// tag names another message, which is acknowledged unprocessed. Here an ack
// is sent only when the delivery's consumer tag is the live one, and the
// live tag is retired by the recovery hook before the channel reopens.
type subscription struct {
	c      *Client
	source string
	queue  string
	sc     brokers.SubscribeConfig
	log    *slog.Logger

	conn  *amqp.Connection
	ch    *amqp.Channel
	connW *stateWatch
	chanW *stateWatch

	mu        sync.RWMutex // held for reading while acking
	live      string       // consumer tag whose acks reach the broker
	gen       uint64       // incremented by every loss
	needOpens uint64       // channel opens to see before using the channel
	dead      chan struct{}
	stale     []staleConsumer
	readyFn   sync.Once

	drains sync.WaitGroup
}

type staleConsumer struct {
	tag        string
	deliveries <-chan amqp.Delivery
}

// consuming reports whether the subscription has a live consumer.
func (s *subscription) consuming() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.live != ""
}

// lost is the recovery hook: it runs before the library reopens anything.
func (s *subscription) lost() {
	s.mu.Lock()
	s.needOpens = 1 // a loss before the watcher started
	if s.chanW != nil {
		s.needOpens = s.chanW.opened() + 1
	}
	s.mu.Unlock()
	s.retire()
}

// retire stops acks for the live consumer.
func (s *subscription) retire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	s.live = ""
	if s.dead != nil {
		close(s.dead)
		s.dead = nil
	}
}

// connect dials the subscription's connection, retrying while the broker is
// unreachable (the library only recovers connections that once succeeded).
func (s *subscription) connect(ctx context.Context) error {
	cfg := s.c.cfg
	role := "subscriber " + s.queue
	var last error
	for attempt := 0; cfg.ReconnectAttempts == 0 || attempt <= cfg.ReconnectAttempts; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, cfg.ReconnectInterval); err != nil {
				return err
			}
		}
		hook := &recoveryHook{onDown: s.lost, log: s.log}
		conn, err := amqp.DialConfig(cfg.URL, cfg.amqpConfig(role, amqp.TopologyRecoveryDisabled, hook))
		if err != nil {
			last = err
			s.log.Warn("rabbitmq: subscriber cannot connect", slog.Any("error", err))
			continue
		}
		ch, err := conn.Channel()
		if err != nil {
			_ = conn.Close()
			last = err
			continue
		}
		s.mu.Lock()
		s.conn, s.ch = conn, ch
		s.connW = watchState(conn.NotifyStateChange)
		s.chanW = watchState(ch.NotifyStateChange)
		s.mu.Unlock()
		return nil
	}
	return fmt.Errorf("%w: rabbitmq: subscribe %q: %v", brokers.ErrUnavailable, s.queue, last)
}

// close closes the connection (the broker requeues what was not acked) and
// waits for the library and the drains to finish.
func (s *subscription) close() {
	_ = closeConn(s.conn, s.connW, s.ch, s.c.cfg.ReconnectInterval/2)
	s.c.awaitLibrary(s.connW, s.chanW)
	s.drains.Wait()
}

type job struct{ d amqp.Delivery }

func (s *subscription) run(ctx context.Context, h brokers.Handler) error {
	work := make(chan job)
	var workers sync.WaitGroup
	for range s.sc.Concurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for j := range work {
				s.handle(ctx, h, j.d)
			}
		}()
	}
	defer workers.Wait()
	defer close(work)

	failures := 0
	consumed := false        // a setup succeeded once
	var inUseSince time.Time // first in-use refusal since the last success
	for {
		deliveries, tag, dead, err := s.setup(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, errGone) {
				return fmt.Errorf("%w: rabbitmq: subscribe %q: connection closed: %v", brokers.ErrUnavailable, s.queue, err)
			}
			if s.sc.Inbox && inUse(err) {
				if inUseSince.IsZero() {
					inUseSince = time.Now()
					s.log.Warn("rabbitmq: reply queue held by another consumer; retrying briefly",
						slog.Any("error", err), slog.Duration("for", s.inUseGrace(consumed)))
				}
				if time.Since(inUseSince) > s.inUseGrace(consumed) {
					return fmt.Errorf("rabbitmq: subscribe %q: %w: %v", s.queue, brokers.ErrInUse, err)
				}
				s.pause(ctx)
				continue
			}
			if refused(err) {
				// Not transient: a queue declared with other arguments, a
				// missing permission. Retrying would fail the same way.
				return fmt.Errorf("rabbitmq: subscribe %q: %w", s.queue, err)
			}
			if !errors.Is(err, errLost) {
				if failures++; failures >= maxSetupFailures {
					return fmt.Errorf("rabbitmq: subscribe %q: %w", s.queue, err)
				}
				s.log.Warn("rabbitmq: subscription setup failed", slog.Any("error", err))
			}
			s.pause(ctx)
			continue
		}
		failures, consumed, inUseSince = 0, true, time.Time{}
		s.readyFn.Do(s.sc.Ready)
		switch s.serve(ctx, deliveries, dead, work) {
		case stopCtx:
			// No basic.cancel: deliveries not handed to a handler are
			// requeued when close ends the connection, after the running
			// handlers settled theirs.
			return nil
		case stopLost:
			s.retireConsumer(tag, deliveries)
		case stopCancelled:
			// The broker cancelled the consumer (queue deleted): declare and
			// consume again.
			s.log.Warn("rabbitmq: consumer cancelled by the broker; re-subscribing")
			s.retire()
		}
	}
}

// pause waits after a failed setup for the next state change of the
// channel, at most ReconnectInterval, so a failure seen before the library
// reported the loss does not spin.
func (s *subscription) pause(ctx context.Context) {
	changed := s.chanW.state().changed
	t := time.NewTimer(s.c.cfg.ReconnectInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-changed:
	case <-t.C:
	}
}

// refused reports whether the broker refused an operation with a channel
// exception (403 access refused, 404 not found, 405 resource locked, 406
// precondition failed): retrying after the recovery fails the same way,
// unlike a lost connection.
func refused(err error) bool {
	var ae *amqp.Error
	if !errors.As(err, &ae) || !ae.Server {
		return false
	}
	switch ae.Code {
	case amqp.AccessRefused, amqp.NotFound, amqp.ResourceLocked, amqp.PreconditionFailed:
		return true
	}
	return false
}

// inUse reports whether err is the broker refusing an exclusive consumer
// because the queue has another consumer (403 ACCESS_REFUSED, "in
// exclusive use"), as opposed to a missing permission (also 403).
func inUse(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Server && ae.Code == amqp.AccessRefused &&
		strings.Contains(ae.Reason, "exclusive use")
}

// firstInUseGrace is how long a new reply-queue subscription retries an
// in-use refusal: long enough for a consumer that is being closed (a
// cluster node handing an adopted queue back) to be gone, short enough
// that a second process with the node's id fails well within 15 s.
const firstInUseGrace = 3 * time.Second

// inUseGrace is how long a reply queue's subscription retries an in-use
// refusal: firstInUseGrace at first; after a reconnection longer, since
// the broker drops a dead connection, and its consumer, only once its
// heartbeats are missed.
func (s *subscription) inUseGrace(reconnection bool) time.Duration {
	switch {
	case !reconnection:
		return firstInUseGrace
	case s.c.cfg.Heartbeat > 0:
		return 3 * s.c.cfg.Heartbeat
	}
	return 30 * time.Second
}

var (
	errLost = errors.New("connection or channel lost during setup")
	errGone = errors.New("recovery ended")
)

// awaitOpen waits until the connection and channel are open, and the
// channel was reopened after the last loss the hook saw: the library reopens
// a channel right after a channel-level close, and a call issued before it
// finished could interleave with its handshake.
func (s *subscription) awaitOpen(ctx context.Context) error {
	for {
		cs, hs := s.connW.state(), s.chanW.state()
		s.mu.RLock()
		need := s.needOpens
		s.mu.RUnlock()
		switch {
		case cs.closed || hs.closed:
			return fmt.Errorf("%w: %v", errGone, errors.Join(cs.err, hs.err))
		case cs.open && hs.open && hs.opens >= need:
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-cs.changed:
		case <-hs.changed:
		}
	}
}

// setup declares the topology, cancels consumers retired by a loss and
// starts a consumer with a fresh tag on the current channel incarnation.
func (s *subscription) setup(ctx context.Context) (<-chan amqp.Delivery, string, <-chan struct{}, error) {
	if err := s.awaitOpen(ctx); err != nil {
		return nil, "", nil, err
	}
	s.mu.Lock()
	gen := s.gen
	stale := s.stale
	s.mu.Unlock()
	lost := func(err error) error {
		s.mu.RLock()
		defer s.mu.RUnlock()
		if s.gen != gen {
			return fmt.Errorf("%w: %w", errLost, err)
		}
		return err
	}

	ch := s.ch
	prefetch := max(s.c.cfg.Prefetch, s.sc.Concurrency)
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return nil, "", nil, lost(fmt.Errorf("qos: %w", err))
	}
	if err := s.declare(ch); err != nil {
		return nil, "", nil, lost(err)
	}
	if len(stale) > 0 {
		// Deliveries of retired consumers that are unacked on this channel
		// incarnation (a consumer that started while a loss was in progress)
		// are handed back to the queue; on a fresh incarnation there are none.
		for _, st := range stale {
			if err := ch.Cancel(st.tag, false); err != nil {
				return nil, "", nil, lost(fmt.Errorf("cancel retired consumer: %w", err))
			}
		}
		// Delivery tag 0 with multiple: every unacked delivery of the channel.
		if err := ch.Nack(0, true, true); err != nil {
			return nil, "", nil, lost(fmt.Errorf("requeue retired deliveries: %w", err))
		}
		s.mu.Lock()
		s.stale = s.stale[len(stale):]
		s.mu.Unlock()
	}

	tag := "syncgate." + s.c.id + "." + strconv.FormatUint(tagSeq.Add(1), 36)
	dead := make(chan struct{})
	s.mu.Lock()
	if s.gen != gen {
		s.mu.Unlock()
		return nil, "", nil, errLost
	}
	s.live, s.dead = tag, dead
	s.mu.Unlock()
	// A reply queue has one consumer, exclusively: a second process with
	// the same node id is refused (see inUse) instead of taking half the
	// replies.
	deliveries, err := ch.Consume(s.queue, tag, false, s.sc.Inbox, false, false, nil)
	if err != nil {
		s.mu.Lock()
		if s.live == tag {
			s.live, s.dead = "", nil
		}
		s.mu.Unlock()
		return nil, "", nil, lost(fmt.Errorf("consume %q: %w", s.queue, err))
	}
	return deliveries, tag, dead, nil
}

// retireConsumer keeps a consumer from before a loss for cancelling after the
// reopen (which frees the library's buffer for it) and discards whatever it
// still delivers: the broker requeued those messages when the channel closed.
func (s *subscription) retireConsumer(tag string, deliveries <-chan amqp.Delivery) {
	s.mu.Lock()
	s.stale = append(s.stale, staleConsumer{tag: tag, deliveries: deliveries})
	s.mu.Unlock()
	s.drains.Add(1)
	go func() {
		defer s.drains.Done()
		for range deliveries {
		}
	}()
}

type stopReason int

const (
	stopCtx stopReason = iota
	stopLost
	stopCancelled
)

func (s *subscription) serve(ctx context.Context, deliveries <-chan amqp.Delivery, dead <-chan struct{}, work chan<- job) stopReason {
	for {
		select {
		case <-ctx.Done():
			return stopCtx
		case <-dead:
			return stopLost
		case d, ok := <-deliveries:
			if !ok {
				select {
				case <-dead:
					return stopLost
				default:
					return stopCancelled
				}
			}
			select {
			case work <- job{d}:
			case <-ctx.Done():
				return stopCtx
			case <-dead:
				return stopLost
			}
		}
	}
}

// handle runs h on d and settles d. On a classic work queue, which has no
// delivery count, the subscription counts attempts itself: see requeue.
// When the handler fails on the last attempt (see lastAttempt), the
// DeadLetter callback gets the message before it is rejected to the
// dead-letter exchange.
func (s *subscription) handle(ctx context.Context, h brokers.Handler, d amqp.Delivery) {
	counting := !s.sc.Inbox && s.c.cfg.QueueType == QueueTypeClassic
	if counting && d.Redelivered && s.requeue(ctx, d, errUnsettled) == nil {
		// Back after a handler that never settled it (a crash, a dropped
		// connection, a subscriber that stopped) or a plain requeue: that
		// delivery counts as an attempt, as a quorum queue counts it.
		return
	}
	last := s.lastAttempt(d)
	m := s.decode(d)
	if !s.sc.Inbox {
		// A failed delivery is published again from d, handed to
		// DeadLetter or to the handler again (see hold) decoded from d:
		// the handler may scribble on its copy of the body.
		m.Body = bytes.Clone(m.Body)
	}
	err := call(ctx, h, m)
	if err != nil && !s.sc.Inbox {
		err = s.hold(ctx, h, d, err)
	}
	switch {
	case err == nil:
		s.settle(d, ack)
	case counting:
		if rerr := s.requeue(ctx, d, err); rerr != nil {
			if !errors.Is(rerr, errRetired) {
				// The copy could not be published (the publishing
				// connection is down): requeued as it is, d would be back
				// at once, uncounted; pause as a reconnection does.
				_ = sleep(ctx, s.c.cfg.ReconnectInterval)
			}
			s.settle(d, requeue)
		}
	case last && s.sc.Inbox:
		// A reply queue has no delivery count: the redelivered flag marks
		// the second attempt, rejected to the dead-letter exchange.
		s.deadLetter(ctx, d, err)
		s.settle(d, reject)
	case last:
		// Returned once more, the message is over the quorum queue's
		// x-delivery-limit and the broker dead-letters it (x-death reason
		// delivery_limit), also when the consumer was retired meanwhile.
		s.deadLetter(ctx, d, err)
		s.settle(d, requeue)
	default:
		s.settle(d, requeue)
	}
}

// Bounds of the pause between the calls of hold.
const (
	minHoldBackoff = 50 * time.Millisecond
	maxHoldBackoff = time.Second
	// holdWindow bounds hold for a message without a deadline header.
	holdWindow = 30 * time.Second
)

// hold calls h on d again, with a jittered backoff, while it fails with an
// error wrapping brokers.ErrUnavailable (what the handler needs, such as
// the connection it publishes its reply on, is down), for as long as the
// message's deadline header allows (holdWindow without one), the
// subscription runs and d's consumer is live. It returns the last error.
//
// A broker that is unavailable is no fault of the message, but a failed
// delivery is returned to the queue and counted: on a quorum queue every
// return spends one of MaxDeliveries at once, so a connection blip would
// dead-letter every message in flight in milliseconds. Holding the
// delivery unsettled instead spends nothing. The handler runs again, as it
// would on a redelivery (at least once).
func (s *subscription) hold(ctx context.Context, h brokers.Handler, d amqp.Delivery, err error) error {
	until := time.Now().Add(holdWindow)
	if dl, ok := d.Headers[envelope.Deadline].(string); ok {
		if t, perr := time.Parse(time.RFC3339Nano, dl); perr == nil {
			until = t
		}
	}
	backoff := minHoldBackoff
	for calls := 1; errors.Is(err, brokers.ErrUnavailable) && s.isLive(d); calls++ {
		pause := min(backoff/2+rand.N(backoff/2+1), time.Until(until))
		if pause <= 0 {
			break
		}
		if calls == 1 {
			s.log.Warn("rabbitmq: handler failed, broker unavailable; holding the message and calling it again",
				slog.String("correlation_id", d.CorrelationId), slog.Any("error", err), slog.Time("until", until))
		}
		if sleep(ctx, pause) != nil {
			break
		}
		m := s.decode(d)
		m.Body = bytes.Clone(m.Body)
		err = call(ctx, h, m)
		backoff = min(2*backoff, maxHoldBackoff)
	}
	return err
}

// lastAttempt reports whether d is its message's last delivery: on a
// quorum work queue, x-delivery-count (the returns before this delivery)
// reached MaxDeliveries-1, the queue's x-delivery-limit; on a classic work
// queue, the attempt header reached MaxDeliveries; on a reply queue, which
// requeues a failed reply once, d is redelivered.
func (s *subscription) lastAttempt(d amqp.Delivery) bool {
	switch {
	case s.sc.Inbox:
		return d.Redelivered
	case s.c.cfg.QueueType == QueueTypeClassic:
		return attempt(d) >= int64(s.c.cfg.MaxDeliveries)
	}
	n, _ := integer(d.Headers[deliveryCountHeader])
	return n >= int64(s.c.cfg.MaxDeliveries-1)
}

// deadLetter tells the subscriber that d goes to the dead-letter exchange
// after its handler failed with err, with a fresh decoding of d (the
// handler's copy may have been altered).
func (s *subscription) deadLetter(ctx context.Context, d amqp.Delivery, err error) {
	s.log.Warn("rabbitmq: message dead-lettered after its last attempt",
		slog.Int("max_deliveries", s.c.cfg.MaxDeliveries), slog.String("correlation_id", d.CorrelationId),
		slog.Any("error", err))
	s.sc.DeadLetter(ctx, s.decode(d), err)
}

// deliveryCountHeader is set by a quorum queue on a redelivery: how many
// times the message was returned before.
const deliveryCountHeader = "x-delivery-count"

// errUnsettled is the DeadLetter error of a classic-queue message whose
// last attempt ended without its handler settling it.
var errUnsettled = errors.New("rabbitmq: the last attempt ended without settling the message (a dropped connection or a stopped consumer)")

// attemptHeader numbers the deliveries of a message on a classic work
// queue (1 when absent). It is an integer: decode does not pass it to
// handlers.
const attemptHeader = "x-syncgate-attempt"

// errRetired: the delivery's consumer was retired by a connection loss.
var errRetired = errors.New("consumer retired by a connection loss")

// requeue settles the delivery d of a classic work queue that failed (or
// came back unsettled): once it was delivered MaxDeliveries times it is
// rejected to the dead-letter exchange (x-death reason rejected), after the
// DeadLetter callback got it with cause (the handler's error); before, a
// copy numbered one attempt more is published to the tail of the queue (the
// default exchange, so no other queue bound to the source gets it) and d is
// acked once the copy is confirmed. It returns an error, leaving d
// unsettled, when the copy cannot be published (the caller requeues d as it
// is: it comes back redelivered and is counted then) or d's consumer was
// retired (the broker has requeued d already: a copy would fork it).
//
// The copy and the ack of d are two operations: when the subscription's
// connection drops between them, both the copy and d come back, one
// duplicate as at-least-once delivery allows.
func (s *subscription) requeue(ctx context.Context, d amqp.Delivery, cause error) error {
	if !s.isLive(d) {
		return errRetired
	}
	n := attempt(d) + 1
	if n > int64(s.c.cfg.MaxDeliveries) {
		s.deadLetter(ctx, d, cause)
		s.settle(d, reject)
		return nil
	}
	// Once sent, the copy is waited for even if ctx ends or the Client
	// closes (Close waits for the subscriptions before it closes the
	// publishing connection): giving up on its confirm and requeueing d as
	// well would leave two copies. ConfirmTimeout bounds the wait.
	if err := s.c.publish(context.WithoutCancel(ctx), nil, "", s.queue, true, republishing(d, n)); err != nil {
		s.log.Warn("rabbitmq: cannot requeue a message with its attempt count; requeueing it as it is",
			slog.Any("error", err))
		return err
	}
	s.settle(d, ack)
	return nil
}

// isLive reports whether d's consumer is the live one.
func (s *subscription) isLive(d amqp.Delivery) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return d.ConsumerTag == s.live
}

// sleep waits for d, or returns ctx.Err() when ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func attempt(d amqp.Delivery) int64 {
	switch v := d.Headers[attemptHeader].(type) {
	case int64:
		return max(v, 1)
	case int32:
		return max(int64(v), 1)
	}
	return 1
}

// republishing is d as a new message numbered n, its expiration recomputed
// from the deadline header (the broker does not say how much of the
// original expiration is left).
func republishing(d amqp.Delivery, n int64) amqp.Publishing {
	h := make(amqp.Table, len(d.Headers)+1)
	for k, v := range d.Headers {
		h[k] = v
	}
	h[attemptHeader] = n
	// Sender-selected distribution would route the copy to other queues.
	delete(h, "CC")
	delete(h, "BCC")
	p := amqp.Publishing{
		Headers:         h,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    d.DeliveryMode,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		Expiration:      d.Expiration,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}
	if dl, ok := d.Headers[envelope.Deadline].(string); ok {
		if t, err := time.Parse(time.RFC3339Nano, dl); err == nil {
			p.Expiration = expiration(time.Until(t))
		}
	}
	return p
}

type settlement int

const (
	ack     settlement = iota
	requeue            // nack with requeue
	reject             // nack without requeue: dead-lettered
)

// settle acks or nacks d unless its consumer was retired by a loss (then the
// broker has requeued it already and its tag means nothing on the reopened
// channel).
func (s *subscription) settle(d amqp.Delivery, how settlement) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if d.ConsumerTag != s.live {
		return
	}
	var err error
	switch how {
	case ack:
		err = d.Ack(false)
	case requeue:
		err = d.Nack(false, true)
	case reject:
		err = d.Nack(false, false)
	}
	if err != nil {
		s.log.Debug("rabbitmq: settle failed; the broker requeues on channel close", slog.Any("error", err))
	}
}

// declare declares (idempotently) what the subscription consumes from.
func (s *subscription) declare(ch *amqp.Channel) error {
	cfg := s.c.cfg
	if err := declareDeadLetter(ch, cfg); err != nil {
		return err
	}
	args := amqp.Table{"x-dead-letter-exchange": cfg.DeadLetterExchange}
	if s.sc.Inbox {
		args["x-expires"] = cfg.ReplyQueueExpiry.Milliseconds()
		args["x-queue-type"] = amqp.QueueTypeClassic
	} else {
		args["x-queue-type"] = cfg.QueueType
		if cfg.QueueType == QueueTypeQuorum {
			args["x-delivery-limit"] = cfg.MaxDeliveries - 1
		}
	}
	if _, err := ch.QueueDeclare(s.queue, true, false, false, false, args); err != nil {
		return fmt.Errorf("declare queue %q: %w", s.queue, err)
	}
	if cfg.Exchange != "" {
		if err := ch.ExchangeDeclare(cfg.Exchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare exchange %q: %w", cfg.Exchange, err)
		}
		if err := ch.QueueBind(s.queue, s.source, cfg.Exchange, false, nil); err != nil {
			return fmt.Errorf("bind queue %q to %q: %w", s.queue, cfg.Exchange, err)
		}
	}
	return nil
}

func declareDeadLetter(ch *amqp.Channel, cfg Config) error {
	if err := ch.ExchangeDeclare(cfg.DeadLetterExchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare dead-letter exchange %q: %w", cfg.DeadLetterExchange, err)
	}
	if _, err := ch.QueueDeclare(cfg.DeadLetterQueue, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare dead-letter queue %q: %w", cfg.DeadLetterQueue, err)
	}
	if err := ch.QueueBind(cfg.DeadLetterQueue, "", cfg.DeadLetterExchange, false, nil); err != nil {
		return fmt.Errorf("bind dead-letter queue %q: %w", cfg.DeadLetterQueue, err)
	}
	return nil
}

// call runs h, turning a panic into an error (the message is redelivered).
func call(ctx context.Context, h brokers.Handler, m brokers.Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("rabbitmq: handler panicked: %v", p)
		}
	}()
	return h(ctx, m)
}
