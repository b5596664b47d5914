package nats_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/brokers/nats"
	"github.com/syncgate/syncgate/internal/testenv"
)

func collect(ch chan<- brokers.Message) brokers.Handler {
	return func(ctx context.Context, m brokers.Message) error {
		select {
		case ch <- m:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
		panic("unreachable")
	}
}

func publish(t *testing.T, p brokers.Publisher, dest string, m brokers.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Publish(ctx, dest, m); err != nil {
		t.Fatalf("Publish(%s): %v", dest, err)
	}
}

// A service in another language uses its NATS client directly: what it
// publishes arrives with its headers as strings (several values of one
// name joined by "\n"), and what syncgate publishes reaches it with plain
// NATS headers; only values NATS cannot carry as they are come quoted.
func TestForeignClient(t *testing.T) {
	cfg := testConfig(t, nats.ModeCore)
	c := dial(t, cfg)
	a := newAdmin(t)
	inbox := cfg.ReplyPrefix + "node-1"

	got := make(chan brokers.Message, 1)
	subscribe(t, c, inbox, collect(got), brokers.AsInbox())
	foreign := &natsgo.Msg{Subject: inbox, Header: natsgo.Header{
		"correlation-id":         {"0190f1c4-8a2b-7c3d-9e4f-5a6b7c8d9e0f"},
		"status":                 {"201"},
		"http-header-set-cookie": {"a=1", "b=2"},
	}, Data: []byte(`{"ok":true}`)}
	if err := a.nc.PublishMsg(foreign); err != nil {
		t.Fatal(err)
	}
	rep, err := envelope.DecodeReply(receive(t, got, "reply from the foreign client"))
	if err != nil {
		t.Fatalf("DecodeReply: %v", err)
	}
	if rep.Status != 201 || rep.Header["set-cookie"] != "a=1\nb=2" || string(rep.Body) != `{"ok":true}` {
		t.Errorf("reply %+v", rep)
	}

	sub, err := a.nc.SubscribeSync("foreign.service")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := a.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	req := envelope.Request{
		CorrelationID: "0190f1c4-8a2b-7c3d-9e4f-5a6b7c8d9e0f", ReplyTo: inbox,
		Method: "POST", Path: "/pay", Header: map[string]string{"x-tenant": "t1", "x-padded": " p "},
		Body: []byte("{}"),
	}
	publish(t, c, "foreign.service", req.Message())
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"correlation-id": req.CorrelationID, "reply-to": inbox, "http-method": "POST",
		"http-header-x-tenant": "t1", "http-header-x-padded": `" p "`, "x-syncgate-quoted": "http-header-x-padded",
	} {
		if got := msg.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if k := msg.Header.Get("x-syncgate-key"); k != "" {
		t.Errorf("a message keyed by its correlation id carries x-syncgate-key %q", k)
	}
}

// Without failures, one jetstream subscription with concurrency 1 sees its
// stream in publish order (the conformance suite skips OrderPerKey for
// jetstream, which cannot keep it around a redelivery).
func TestOrderWithoutFailures(t *testing.T) {
	cfg := testConfig(t, nats.ModeJetStream)
	c := dial(t, cfg)
	dest := unique("sgtest.order.")
	const n = 200
	got := make(chan brokers.Message, n)
	subscribe(t, c, dest, collect(got), brokers.WithConcurrency(1))
	for i := range n {
		publish(t, c, dest, brokers.Message{Key: "k" + strconv.Itoa(i%4), Body: []byte(strconv.Itoa(i))})
	}
	for i := range n {
		if m := receive(t, got, "delivery"); string(m.Body) != strconv.Itoa(i) {
			t.Fatalf("delivery %d is message %s", i, m.Body)
		}
	}
}

// An inbox hands the messages of one correlation id to one handler at a
// time, in order, while other ids go on in parallel.
func TestInboxOrderPerCorrelationID(t *testing.T) {
	cfg := testConfig(t, nats.ModeCore)
	c := dial(t, cfg)
	inbox := cfg.ReplyPrefix + "node-order"
	const ids, each = 16, 25
	var (
		mu      sync.Mutex
		next    = map[string]int{}
		running = map[string]bool{}
		errs    []string
	)
	done := make(chan struct{}, ids*each)
	subscribe(t, c, inbox, func(ctx context.Context, m brokers.Message) error {
		id := m.Headers[envelope.CorrelationID]
		mu.Lock()
		if running[id] {
			errs = append(errs, "two handlers at once for "+id)
		}
		running[id] = true
		if seq, _ := strconv.Atoi(string(m.Body)); seq != next[id] {
			errs = append(errs, fmt.Sprintf("%s: got %d, want %d", id, seq, next[id]))
		}
		next[id]++
		mu.Unlock()
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		mu.Lock()
		running[id] = false
		mu.Unlock()
		done <- struct{}{}
		return nil
	}, brokers.AsInbox(), brokers.WithConcurrency(8))
	for i := range each {
		for id := range ids {
			rep := envelope.Reply{CorrelationID: fmt.Sprintf("0190f1c4-8a2b-7c3d-9e4f-%012d", id), Progress: i < each-1, Body: []byte(strconv.Itoa(i))}
			publish(t, c, inbox, rep.Message())
		}
	}
	for range ids * each {
		receive(t, done, "handled reply")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Errorf("%d violations, first: %s", len(errs), errs[0])
	}
}

// A second live process subscribing to an inbox gets brokers.ErrInUse; once
// the first is gone, the subject is free.
func TestInboxInUse(t *testing.T) {
	cfg := testConfig(t, nats.ModeCore)
	first, second := dial(t, cfg), dial(t, cfg)
	inbox := cfg.ReplyPrefix + "node-twice"
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- first.Subscribe(ctx, inbox, func(context.Context, brokers.Message) error { return nil },
			brokers.AsInbox(), brokers.WithReady(func() { close(ready) }))
	}()
	receive(t, ready, "first inbox subscription ready")

	start := time.Now()
	err := second.Subscribe(context.Background(), inbox, func(context.Context, brokers.Message) error { return nil }, brokers.AsInbox())
	if !errors.Is(err, brokers.ErrInUse) {
		t.Fatalf("second inbox subscription returned %v, want brokers.ErrInUse", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("ErrInUse took %v", d)
	}
	cancel()
	if err := receive(t, done, "first Subscribe returning"); err != nil {
		t.Fatalf("first Subscribe: %v", err)
	}
	subscribe(t, second, inbox, func(context.Context, brokers.Message) error { return nil }, brokers.AsInbox())
}

// A message given up on reaches the dead-letter subject with its headers,
// its body, the handler's error and the subject it came from; in jetstream
// mode it is kept in the dead-letter stream and gone from the work queue.
func TestDeadLetterSubject(t *testing.T) {
	for _, mode := range []string{nats.ModeCore, nats.ModeJetStream} {
		t.Run(mode, func(t *testing.T) {
			cfg := testConfig(t, mode)
			cfg.MaxDeliveries = 2
			c := dial(t, cfg)
			a := newAdmin(t)
			dest := unique("sgtest.dlq.")
			dl, err := a.nc.SubscribeSync(cfg.DeadLetter)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = dl.Unsubscribe() }()
			if err := a.nc.Flush(); err != nil {
				t.Fatal(err)
			}
			called := make(chan error, 1)
			subscribe(t, c, dest, func(context.Context, brokers.Message) error {
				return errors.New("refused:\nno")
			}, brokers.WithDeadLetter(func(_ context.Context, _ brokers.Message, err error) { called <- err }))
			publish(t, c, dest, brokers.Message{Key: "k", Headers: map[string]string{"x-a": "1"}, Body: []byte("poison")})
			receive(t, called, "DeadLetter callback")
			msg, err := dl.NextMsg(10 * time.Second)
			if err != nil {
				t.Fatalf("no dead letter: %v", err)
			}
			if string(msg.Data) != "poison" || msg.Header.Get("x-a") != "1" || msg.Header.Get("x-syncgate-key") != "k" ||
				msg.Header.Get("x-syncgate-dead-letter-reason") != "refused: no" ||
				msg.Header.Get("x-syncgate-dead-letter-subject") != dest {
				t.Errorf("dead letter %q %q", msg.Header, msg.Data)
			}
			if mode == nats.ModeJetStream {
				testenv.Eventually(t, 5*time.Second, "work queue emptied", func() bool { return a.messages(cfg.StreamName(dest)) == 0 })
				if n := a.messages(cfg.StreamPrefix + "DEAD_LETTER"); n != 1 {
					t.Errorf("dead-letter stream holds %d messages, want 1", n)
				}
			}
		})
	}
}

// In jetstream mode a subject without a stream is unroutable, a subject
// under the reply prefix is core NATS (a reply nobody takes is
// unavailable: reply_confirm_test.go), and an inbox must be under it.
func TestJetStreamAddressing(t *testing.T) {
	cfg := testConfig(t, nats.ModeJetStream)
	c := dial(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Publish(ctx, unique("sgtest.nostream."), brokers.Message{Body: []byte("x")}); !errors.Is(err, brokers.ErrUnroutable) {
		t.Errorf("publish to a subject without a stream: %v, want brokers.ErrUnroutable", err)
	}
	if err := c.Publish(ctx, cfg.ReplyPrefix+"nobody", brokers.Message{Body: []byte("x")}); !errors.Is(err, brokers.ErrUnavailable) {
		t.Errorf("core publish under the reply prefix, nobody subscribing: %v, want brokers.ErrUnavailable", err)
	}
	err := c.Subscribe(ctx, "elsewhere.node-1", func(context.Context, brokers.Message) error { return nil }, brokers.AsInbox())
	if err == nil || !strings.Contains(err.Error(), "reply_prefix") {
		t.Errorf("inbox outside the reply prefix: %v", err)
	}
}

// A work-queue stream has one group: a second one is refused, naming why.
func TestJetStreamSecondGroup(t *testing.T) {
	cfg := testConfig(t, nats.ModeJetStream)
	c := dial(t, cfg)
	dest := unique("sgtest.groups.")
	subscribe(t, c, dest, func(context.Context, brokers.Message) error { return nil }, brokers.WithGroup("one"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.Subscribe(ctx, dest, func(context.Context, brokers.Message) error { return nil }, brokers.WithGroup("two"))
	if err == nil || !strings.Contains(err.Error(), "one group") {
		t.Errorf("second group: %v", err)
	}
}

// A body larger than max_payload travels through the body bucket; in
// jetstream mode its object is deleted once the message is acknowledged.
func TestLargeBody(t *testing.T) {
	for _, mode := range []string{nats.ModeCore, nats.ModeJetStream} {
		t.Run(mode, func(t *testing.T) {
			cfg := testConfig(t, mode)
			c := dial(t, cfg)
			a := newAdmin(t)
			body := bytes.Repeat([]byte("0123456789abcdef"), 1<<17) // 2 MiB
			dest := unique("sgtest.large.")
			got := make(chan brokers.Message, 1)
			subscribe(t, c, dest, collect(got))
			publish(t, c, dest, brokers.Message{Key: "k", Headers: map[string]string{"x-a": "1"}, Body: body})
			m := receive(t, got, "large message")
			if !bytes.Equal(m.Body, body) || m.Headers["x-a"] != "1" || len(m.Headers) != 1 {
				t.Fatalf("got %d bytes, headers %q", len(m.Body), m.Headers)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			obs, err := a.js.ObjectStore(ctx, cfg.BodyBucket)
			if err != nil {
				t.Fatalf("body bucket: %v", err)
			}
			objects := func() int {
				l, err := obs.List(ctx)
				if errors.Is(err, jetstream.ErrNoObjectsFound) {
					return 0
				}
				if err != nil {
					t.Fatalf("list: %v", err)
				}
				return len(l)
			}
			if mode == nats.ModeJetStream {
				testenv.Eventually(t, 5*time.Second, "body object deleted after the ack", func() bool { return objects() == 0 })
			} else if n := objects(); n != 1 {
				t.Errorf("core mode: %d objects, want the one the TTL removes", n)
			}
		})
	}
}

// After the connection drops (a relay closing it, as a server restart
// would), the Client reconnects on its own: Ready turns false and true
// again, a core subscription receives what is published after, and a
// jetstream subscription also what was published during the outage.
func TestReconnect(t *testing.T) {
	for _, mode := range []string{nats.ModeCore, nats.ModeJetStream} {
		t.Run(mode, func(t *testing.T) {
			cfg := testConfig(t, mode)
			p := testenv.NewRelay(t, natsURL())
			via := cfg
			via.URL = p.URL(t, natsURL())
			c := dial(t, via)
			other := dial(t, cfg)
			dest := unique("sgtest.reconnect.")
			got := make(chan brokers.Message, 4)
			subscribe(t, c, dest, collect(got))
			testenv.Eventually(t, 5*time.Second, "Ready", c.Ready)

			p.Drop()
			testenv.Eventually(t, 5*time.Second, "Ready false after the drop", func() bool { return !c.Ready() })
			if mode == nats.ModeJetStream {
				publish(t, other, dest, brokers.Message{Key: "k", Body: []byte("during")})
			}
			testenv.Eventually(t, 10*time.Second, "Ready again after the reconnection", c.Ready)
			if mode == nats.ModeJetStream {
				if m := receive(t, got, "message published during the outage"); string(m.Body) != "during" {
					t.Fatalf("got %q", m.Body)
				}
			}
			// A core subscription is back on the server once a round trip
			// after the reconnection returned: publish until one arrives.
			deadline := time.Now().Add(10 * time.Second)
			for {
				publish(t, c, dest, brokers.Message{Key: "k", Body: []byte("after")})
				select {
				case m := <-got:
					if string(m.Body) != "after" {
						t.Fatalf("got %q", m.Body)
					}
					return
				case <-time.After(100 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatal("no delivery after the reconnection")
				}
			}
		})
	}
}

// A jetstream subscription whose consumer is deleted under it (an
// operator, a memory stream lost in a server restart) declares it again
// and goes on.
func TestJetStreamConsumerDeleted(t *testing.T) {
	cfg := testConfig(t, nats.ModeJetStream)
	c := dial(t, cfg)
	a := newAdmin(t)
	dest := unique("sgtest.recreate.")
	got := make(chan brokers.Message, 4)
	subscribe(t, c, dest, collect(got))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.js.DeleteConsumer(ctx, cfg.StreamName(dest), nats.DefaultGroup); err != nil {
		t.Fatalf("DeleteConsumer: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		publish(t, c, dest, brokers.Message{Key: "k", Body: []byte(strconv.Itoa(i))})
		select {
		case <-got:
			return
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no delivery after the consumer was deleted")
		}
	}
}
