package rabbitmq

// Recovery of a subscription across connection and channel losses: the
// subscription's own connection, the live consumer tag (the only one whose
// acks reach the broker) and its retirement by the recovery hook, and the
// setup that starts a fresh consumer after every reopen. It exists because
// amqp091-go's own consumer recovery would ack stale delivery tags on the
// reopened channel (see subscription).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers"
)

var tagSeq atomic.Uint64

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

// isLive reports whether d's consumer is the live one.
func (s *subscription) isLive(d amqp.Delivery) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return d.ConsumerTag == s.live
}
