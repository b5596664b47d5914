package rabbitmq_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/brokers/rabbitmq"
	"github.com/syncgate/syncgate/brokers/responder"
	"github.com/syncgate/syncgate/brokers/responder/demo"
	"github.com/syncgate/syncgate/internal/testenv"
)

// serveResponder runs a responder service on c from source until the test
// ends, and waits until it consumes.
func serveResponder(t *testing.T, c *rabbitmq.Client, pub responder.Publisher, source string, h responder.Handler, opts ...brokers.SubscribeOption) {
	t.Helper()
	svc := &responder.Service{Subscriber: c, Publisher: pub, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- svc.Serve(ctx, source, h, append(opts, brokers.WithReady(func() { close(ready) }))...)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve(%s) returned %v", source, err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Serve(%s) did not return 20s after its context ended", source)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Serve(%s) returned before ready: %v", source, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("Serve(%s) not ready within 20s", source)
	}
}

// TestServicePublisherDropDeadLettersNothing (issue 13, point 4): under a
// steady stream of requests, the broker drops the responder service's
// publishing connection. Replies cannot be published until it is back, but
// that is no fault of the requests: none may be dead-lettered (the quorum
// queue's delivery limit must not be spent on a connection blip), and every
// request is answered once publishing works again.
func TestServicePublisherDropDeadLettersNothing(t *testing.T) {
	requireRabbitmqctl(t)
	cfg := testConfig(t) // quorum work queue, MaxDeliveries 5: the defaults
	gwCfg, svcCfg := cfg, cfg
	gwCfg.ConnectionName += "-gw"
	svcCfg.ConnectionName += "-svc"
	svcCfg.ReconnectInterval = time.Second // a blip of a second or two
	gw, svc := dial(t, gwCfg), dial(t, svcCfg)
	work, inbox := unique("sgtest.work"), unique("syncgate.reply")
	cleanupQueue(t, work)
	cleanupQueue(t, inbox)

	serveResponder(t, svc, svc, work, demo.Echo, brokers.WithConcurrency(32))
	var (
		mu       sync.Mutex
		answered = map[string]int{}
	)
	subscribe(t, gw, inbox, func(_ context.Context, m brokers.Message) error {
		mu.Lock()
		answered[m.Headers[envelope.CorrelationID]]++
		mu.Unlock()
		return nil
	}, brokers.AsInbox(), brokers.WithConcurrency(8))

	// 200 requests a second until the drop has been noticed and a second
	// more, from a goroutine: closeConnections may fail the test.
	stop := make(chan struct{})
	sent := make(chan []string, 1)
	var count atomic.Int64
	go func() {
		var ids []string
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		defer func() { sent <- ids }()
		limit := time.After(30 * time.Second)
		for {
			select {
			case <-stop:
				return
			case <-limit:
				return
			case <-tick.C:
			}
			id := uuid.NewString()
			m := envelope.Request{CorrelationID: id, ReplyTo: inbox, Deadline: time.Now().Add(30 * time.Second),
				Body: []byte(id)}.Message()
			if err := gw.Publish(context.Background(), work, m); err != nil {
				t.Errorf("publishing request %d: %v", len(ids), err)
				return
			}
			ids = append(ids, id)
			count.Add(1)
		}
	}()
	testenv.Eventually(t, 10*time.Second, "load before the drop", func() bool { return count.Load() >= 60 })
	if n := closeConnections(t, svcCfg.ConnectionName+" publisher"); n != 1 {
		close(stop)
		<-sent
		t.Fatalf("closed %d service publisher connections, want 1", n)
	}
	testenv.Eventually(t, 10*time.Second, "the service publishing again", svc.Ready)
	back := count.Load()
	testenv.Eventually(t, 10*time.Second, "load after the recovery", func() bool { return count.Load() >= back+200 })
	close(stop)
	ids := <-sent
	if len(ids) < 200 {
		t.Fatalf("only %d requests sent", len(ids))
	}

	a := newAdmin(t)
	missing := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, id := range ids {
			if answered[id] == 0 {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(20 * time.Second)
	for missing() > 0 && a.messages(cfg.DeadLetterQueue) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // polling two conditions with a deadline
	}
	if n := a.messages(cfg.DeadLetterQueue); n != 0 {
		t.Errorf("%d requests dead-lettered by a drop of the service's publishing connection, want 0", n)
	}
	if n := missing(); n > 0 {
		t.Errorf("%d of %d requests never answered", n, len(ids))
	}
	t.Logf("%d requests sent", len(ids))
}

// refusingOK is a Publisher that refuses to publish 200 replies, as a
// reply address that rejects them would; other messages go through.
type refusingOK struct{ *rabbitmq.Client }

var errRefused = errors.New("injected: reply refused")

func (r refusingOK) Publish(ctx context.Context, dest string, m brokers.Message) error {
	if m.Headers[envelope.Status] == "200" {
		return errRefused
	}
	return r.Client.Publish(ctx, dest, m)
}

// TestDeadLetteredRequestAnswered502 (issue 13, point 12): a request whose
// service fails on every attempt is dead-lettered after MaxDeliveries and
// its caller gets a 502 dead-lettered problem at once, on the real server.
func TestDeadLetteredRequestAnswered502(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxDeliveries = 2
	c := dial(t, cfg)
	work, inbox := unique("sgtest.work"), unique("syncgate.reply")
	cleanupQueue(t, work)
	cleanupQueue(t, inbox)
	serveResponder(t, c, refusingOK{c}, work, demo.Echo)
	replies := make(chan brokers.Message, 4)
	subscribe(t, c, inbox, func(_ context.Context, m brokers.Message) error { replies <- m; return nil }, brokers.AsInbox())

	id := uuid.NewString()
	req := envelope.Request{CorrelationID: id, ReplyTo: inbox, Deadline: time.Now().Add(time.Minute)}.Message()
	if err := c.Publish(t.Context(), work, req); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-replies:
		rep, err := envelope.DecodeReply(m)
		if err != nil || rep.CorrelationID != id || rep.StatusCode() != 502 ||
			!strings.Contains(string(rep.Body), envelope.FailureDeadLettered) {
			t.Fatalf("reply %+v (%v), want a 502 dead-lettered problem for %s", rep, err, id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reply within 10s to a request that failed on every attempt")
	}
	a := newAdmin(t)
	testenv.Eventually(t, 5*time.Second, "the request in the dead-letter queue", func() bool { return a.messages(cfg.DeadLetterQueue) == 1 })
}

// TestUnavailableHandlerErrorHeld (issue 13, point 4, for handlers other
// than the responder's): a handler failing because the broker is
// unavailable (an error wrapping brokers.ErrUnavailable) is called again
// while its delivery is held, without spending the message's attempts: on
// both queue types, a message whose handler fails that way more often than
// MaxDeliveries is handled in the end, not dead-lettered.
func TestUnavailableHandlerErrorHeld(t *testing.T) {
	for _, queueType := range []string{rabbitmq.QueueTypeQuorum, rabbitmq.QueueTypeClassic} {
		t.Run(queueType, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.MaxDeliveries = 2
			cfg.QueueType = queueType
			c := dial(t, cfg)
			q := unique("sgtest.held")
			cleanupQueue(t, q)
			var calls atomic.Int32
			handled := make(chan brokers.Message, 1)
			subscribe(t, c, q, func(_ context.Context, m brokers.Message) error {
				if calls.Add(1) <= 4 {
					m.Body[0] ^= 0xff // a failed call's scribbles stay in its copy
					return fmt.Errorf("publishing the reply: %w", brokers.ErrUnavailable)
				}
				handled <- m
				return nil
			}, brokers.WithDeadLetter(func(context.Context, brokers.Message, error) {
				t.Error("DeadLetter called for a message whose handler only met an unavailable broker")
			}))
			m := request("r", time.Minute)
			if err := c.Publish(t.Context(), q, m); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-handled:
				if !bytes.Equal(got.Body, m.Body) {
					t.Errorf("body %x on the last call, want the message's %x", got.Body, m.Body)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("not handled within 15s (%d calls)", calls.Load())
			}
			a := newAdmin(t)
			if n := a.messages(cfg.DeadLetterQueue); n != 0 {
				t.Errorf("%d messages dead-lettered, want 0", n)
			}
			testenv.Eventually(t, 5*time.Second, "work queue empty", func() bool { return a.messages(q) == 0 })
			if n := calls.Load(); n != 5 {
				t.Errorf("handler called %d times, want 5", n)
			}
		})
	}
}
