package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/syncgate/syncgate/brokers"
)

// Subscribe consumes source until ctx ends or Close, calling h on up to
// Concurrency goroutines (with AsInbox, the messages of one correlation id
// on one of them, in order), and returns nil then, after the running
// handlers returned.
//
// A core subscription (core mode, or a source under ReplyPrefix) is a
// queue subscription in the group (DefaultGroup without WithGroup; an
// inbox is a plain subscription, and fails with brokers.ErrInUse while
// another live process consumes the subject). A handler error is retried
// in place, after RetryDelay doubling to MaxRetryDelay, up to MaxDeliveries
// attempts. A jetstream subscription creates the source's work-queue
// stream and the group's durable pull consumer if they do not exist,
// acknowledges a message after h returned nil and naks it, with the same
// delays, after an error. In both modes the attempt that reaches
// MaxDeliveries sends the message to the dead-letter subject and calls the
// DeadLetter callback. See the package doc for what happens on a stop and a
// reconnection.
func (c *Client) Subscribe(ctx context.Context, source string, h brokers.Handler, opts ...brokers.SubscribeOption) error {
	sc := brokers.NewSubscribeConfig(opts...)
	if err := checkSubject(source); err != nil {
		return fmt.Errorf("nats: subscribe: %w", err)
	}
	if err := c.enter(); err != nil {
		return err
	}
	defer c.wg.Done()
	if ctx.Err() != nil {
		return nil
	}
	core := c.core(source)
	if sc.Inbox && !core {
		return fmt.Errorf("nats: subscribe: inbox %q is outside nats.reply_prefix %q: in jetstream mode replies to it would be published to a stream",
			source, c.cfg.ReplyPrefix)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()

	group := sc.Group
	if group == "" {
		group = DefaultGroup
	}
	s := &subscription{
		c: c, source: source, group: group, sc: sc, h: h,
		log: c.log.With(slog.String("subject", source), slog.String("group", group)),
	}
	c.track(s, true)
	defer c.track(s, false)
	if core {
		return s.runCore(ctx)
	}
	return s.runJetStream(ctx)
}

// subscription is one Subscribe call.
type subscription struct {
	c      *Client
	source string
	group  string
	sc     brokers.SubscribeConfig
	h      brokers.Handler
	log    *slog.Logger

	consuming atomic.Bool // for Client.Ready
	readyOnce sync.Once

	mu        sync.Mutex
	handBack  []*natsgo.Msg // core: taken but not handled when the subscription stopped
	abandoned []delivery    // jetstream: the same, to be nakked
}

// ready marks the subscription consuming and calls the Ready callback the
// first time.
func (s *subscription) ready() {
	s.consuming.Store(true)
	s.readyOnce.Do(s.sc.Ready)
}

// fetchBody returns the body that ref names in the body bucket.
func (s *subscription) fetchBody(ctx context.Context, ref string) ([]byte, error) {
	fctx, cancel := context.WithTimeout(ctx, s.c.cfg.ConfirmTimeout)
	defer cancel()
	return s.c.bodies.fetch(fctx, ref)
}

// retryDelay is the pause before the delivery that follows failed
// attempt n (1-based): RetryDelay doubling up to MaxRetryDelay.
func (s *subscription) retryDelay(n int) time.Duration {
	d := s.c.cfg.RetryDelay
	for i := 1; i < n && d < s.c.cfg.MaxRetryDelay; i++ {
		d *= 2
	}
	return min(d, s.c.cfg.MaxRetryDelay)
}

// deadLetter publishes the message d came as to the dead-letter subject,
// its headers and data as they came plus reasonHeader and sourceHeader. In
// jetstream mode the publish waits for the dead-letter stream's ack; an
// error means the message must not be settled yet. The caller calls the
// DeadLetter callback.
func (s *subscription) deadLetter(ctx context.Context, d delivery, cause error) error {
	hdr, data := d.header(), d.data()
	h := make(natsgo.Header, len(hdr)+2)
	for k, v := range hdr {
		h[k] = v
	}
	h[reasonHeader] = []string{oneLine(cause.Error())}
	h[sourceHeader] = []string{s.source}
	msg := &natsgo.Msg{Subject: s.c.cfg.DeadLetter, Header: h, Data: data}

	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.c.cfg.ConfirmTimeout)
	defer cancel()
	var err error
	if s.c.tooLarge(msg) {
		_, err = s.c.bodies.offload(pctx, msg)
	}
	if err == nil {
		if s.c.cfg.Mode == ModeJetStream {
			_, err = s.c.js.PublishMsg(pctx, msg)
		} else {
			err = s.c.nc.PublishMsg(msg)
		}
	}
	if err != nil {
		s.log.Error("nats: could not publish a dead letter",
			slog.String("correlation_id", d.correlationID()),
			slog.String("dead_letter", s.c.cfg.DeadLetter), slog.Any("cause", cause), slog.Any("error", err))
		return err
	}
	s.log.Warn("nats: message dead-lettered",
		slog.String("correlation_id", d.correlationID()),
		slog.String("dead_letter", s.c.cfg.DeadLetter), slog.Any("error", cause))
	return nil
}

// oneLine makes s fit a header value.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// sleep waits for d, or returns false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// isGone reports whether err says a message cannot be handled however
// often it is delivered.
func isGone(err error) bool { return errors.Is(err, errBodyGone) }
