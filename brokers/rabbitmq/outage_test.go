package rabbitmq_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/brokers/rabbitmq/rabbitmqtest"
	"github.com/syncgate/syncgate/internal/testenv"
)

// failFast is how quickly a publish during an outage must fail.
const failFast = 250 * time.Millisecond

// expectUnavailable publishes until one attempt fails with ErrUnavailable,
// checking that every failing attempt failed at once. It returns when it saw
// one, and fails the test if none came within 5s.
func expectUnavailable(t *testing.T, p brokers.Publisher, dest string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		start := time.Now()
		err := p.Publish(ctx, dest, brokers.Message{Body: []byte("during outage " + strconv.Itoa(attempt))})
		took := time.Since(start)
		cancel()
		if isUnavailable(err) {
			if took > failFast {
				t.Fatalf("Publish during the outage took %s to fail, want < %s", took, failFast)
			}
			return
		}
		if err != nil {
			t.Fatalf("Publish during the outage = %v, want ErrUnavailable", err)
		}
		// Published before the client noticed the loss; try again.
	}
	t.Fatal("no Publish failed with ErrUnavailable within 5s of the outage")
}

// expectRecovered publishes until the broker answers, within limit.
func expectRecovered(t *testing.T, p brokers.Publisher, dest string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(limit)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err = p.Publish(ctx, dest, brokers.Message{Body: []byte("after outage")})
		cancel()
		if err == nil || errors.Is(err, brokers.ErrUnroutable) { // the broker answered
			return time.Since(start)
		}
		if !isUnavailable(err) {
			t.Fatalf("Publish after the outage = %v", err)
		}
		// Bounded polling: nothing signals "the broker is back" to a caller.
		<-time.After(50 * time.Millisecond)
	}
	t.Fatalf("Publish still failing %s after the broker came back: %v", limit, err)
	return 0
}

// TestPublisherConnectionDrop: after the broker drops the publishing
// connection, publishes fail at once with ErrUnavailable until amqp091-go
// recovered it, then succeed again; repeated drops leave no goroutines behind.
func TestPublisherConnectionDrop(t *testing.T) {
	requireRabbitmqctl(t)
	cfg := testConfig(t)
	cfg.ReconnectInterval = time.Second // an outage long enough to observe
	c := dial(t, cfg)
	q := unique("sgtest.pubdrop")
	cleanupQueue(t, q)
	var got atomic.Int32
	subscribe(t, c, q, func(context.Context, brokers.Message) error { got.Add(1); return nil })
	if err := c.Publish(t.Context(), q, brokers.Message{Body: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	baseline := runtime.NumGoroutine()
	for cycle := range 3 {
		if n := closeConnections(t, cfg.ConnectionName+" publisher"); n != 1 {
			t.Fatalf("cycle %d: closed %d publisher connections, want 1", cycle, n)
		}
		expectUnavailable(t, c, q)
		took := expectRecovered(t, c, q, 10*time.Second)
		t.Logf("cycle %d: publishing again %s after the drop was noticed", cycle, took)
	}
	testenv.Eventually(t, 10*time.Second, "goroutines back to the baseline", func() bool {
		return runtime.NumGoroutine() <= baseline+2
	})
}

// TestRepliesSurviveConnectionDrop: a request published before the gateway
// node's connections drop is answered while they are down; the reply waits
// in the node's reply queue and is delivered after recovery. A reply
// published to the queue during the outage by someone else arrives too.
func TestRepliesSurviveConnectionDrop(t *testing.T) {
	requireRabbitmqctl(t)
	cfg := testConfig(t)
	gwCfg, svcCfg := cfg, cfg
	gwCfg.ConnectionName += "-gw"
	gwCfg.ReconnectInterval = time.Second
	svcCfg.ConnectionName += "-svc"
	gw, svc := dial(t, gwCfg), dial(t, svcCfg)
	work, inbox := unique("sgtest.work"), unique("syncgate.reply")
	cleanupQueue(t, work)
	cleanupQueue(t, inbox)

	started, release := make(chan string, 1), make(chan struct{})
	subscribe(t, svc, work, func(ctx context.Context, m brokers.Message) error {
		req, err := envelope.DecodeRequest(m)
		if err != nil {
			return err
		}
		started <- req.CorrelationID
		select { // a slow service
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return svc.Publish(ctx, req.ReplyTo, envelope.Reply{CorrelationID: req.CorrelationID, Body: []byte("answer")}.Message())
	})
	replies := make(chan string, 4)
	subscribe(t, gw, inbox, func(_ context.Context, m brokers.Message) error {
		replies <- m.Headers[envelope.CorrelationID]
		return nil
	}, brokers.AsInbox())

	req := request(inbox, time.Minute)
	if err := gw.Publish(t.Context(), work, req); err != nil {
		t.Fatal(err)
	}
	id := <-started
	if n := closeConnections(t, gwCfg.ConnectionName+" "); n != 2 {
		t.Fatalf("closed %d gateway connections, want 2 (publisher and reply subscriber)", n)
	}
	close(release) // the reply is published while the node is disconnected

	other := envelope.Reply{CorrelationID: "0190a9b2-7c4d-7e8f-9a0b-000000000002"}
	if err := svc.Publish(t.Context(), inbox, other.Message()); err != nil {
		t.Fatalf("publishing to the reply queue of a disconnected node: %v", err)
	}
	want := map[string]bool{id: true, other.CorrelationID: true}
	timeout := time.After(15 * time.Second)
	for len(want) > 0 {
		select {
		case r := <-replies:
			delete(want, r)
		case <-timeout:
			t.Fatalf("replies %v not delivered within 15s of the drop", want)
		}
	}
}

// TestHandlerAcrossConnectionDrop: a handler still running when its
// subscription's connection drops finishes after the recovery. Its
// pre-outage delivery tag must not be acked on the new channel (where it
// means nothing, or another message): the message, redelivered after the
// recovery, is handled twice in all (at least once), never a third time
// because of a channel error, and the queue ends empty.
func TestHandlerAcrossConnectionDrop(t *testing.T) {
	requireRabbitmqctl(t)
	cfg := testConfig(t)
	c := dial(t, cfg)
	q := unique("sgtest.stale")
	cleanupQueue(t, q)

	var slowCalls atomic.Int32
	var fast sync.Map
	firstRunning, secondRunning := make(chan struct{}), make(chan struct{})
	releaseFirst, releaseSecond := make(chan struct{}), make(chan struct{})
	third := make(chan struct{}, 1)
	subscribe(t, c, q, func(_ context.Context, m brokers.Message) error {
		if string(m.Body) != "slow" {
			if _, dup := fast.LoadOrStore(string(m.Body), true); dup {
				t.Errorf("%s handled twice", m.Body)
			}
			return nil
		}
		switch slowCalls.Add(1) {
		case 1:
			close(firstRunning)
			<-releaseFirst
		case 2:
			close(secondRunning)
			<-releaseSecond
		default:
			third <- struct{}{}
		}
		return nil
	}, brokers.WithConcurrency(4))

	// Tags 1 and 2 are acked before the slow message gets tag 3, so its stale
	// ack would name a tag the new channel never issued.
	for _, body := range []string{"a", "b"} {
		if err := c.Publish(t.Context(), q, brokers.Message{Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	a := newAdmin(t)
	testenv.Eventually(t, 5*time.Second, "a and b acked", func() bool { return a.messages(q) == 0 && countAcked(&fast) == 2 })
	if err := c.Publish(t.Context(), q, brokers.Message{Body: []byte("slow")}); err != nil {
		t.Fatal(err)
	}
	<-firstRunning
	if n := closeConnections(t, cfg.ConnectionName+" subscriber"); n != 1 {
		t.Fatalf("closed %d subscriber connections, want 1", n)
	}
	select {
	case <-secondRunning:
	case <-time.After(15 * time.Second):
		t.Fatal("the held message was not redelivered after the recovery")
	}
	close(releaseFirst) // finishes on the new channel incarnation
	for i := range 5 {
		if err := c.Publish(t.Context(), q, brokers.Message{Body: []byte("after-" + strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	close(releaseSecond)
	testenv.Eventually(t, 10*time.Second, "messages after the recovery handled", func() bool { return countAcked(&fast) == 7 })
	testenv.Eventually(t, 10*time.Second, "queue empty", func() bool { return a.messages(q) == 0 })
	select {
	case <-third:
		t.Fatal("the held message was delivered a third time: a stale ack broke the recovered channel")
	case <-time.After(2 * time.Second): // negative check: nothing may happen
	}
}

func countAcked(m *sync.Map) int {
	n := 0
	m.Range(func(any, any) bool { n++; return true })
	return n
}

// TestBrokerRestart stops and starts the RabbitMQ application: persistent
// messages in durable queues survive, publishes during the outage fail at
// once, and publishing, consuming and request/reply work again within 10s
// of the broker being back.
func TestBrokerRestart(t *testing.T) {
	requireRabbitmqctl(t)
	cfg := testConfig(t)
	gwCfg, svcCfg := cfg, cfg
	gwCfg.ConnectionName += "-gw"
	svcCfg.ConnectionName += "-svc"
	gw, svc := dial(t, gwCfg), dial(t, svcCfg)
	work, parked, inbox := unique("sgtest.work"), unique("sgtest.parked"), unique("syncgate.reply")
	for _, q := range []string{work, parked, inbox} {
		cleanupQueue(t, q)
	}
	subscribe(t, svc, work, func(ctx context.Context, m brokers.Message) error {
		req, err := envelope.DecodeRequest(m)
		if err != nil {
			return err
		}
		return svc.Publish(ctx, req.ReplyTo, envelope.Reply{CorrelationID: req.CorrelationID, Body: req.Body}.Message())
	})
	replies := make(chan string, 16)
	subscribe(t, gw, inbox, func(_ context.Context, m brokers.Message) error {
		replies <- m.Headers[envelope.CorrelationID]
		return nil
	}, brokers.AsInbox())
	roundTrip := func(n int) {
		t.Helper()
		id := fmt.Sprintf("0190a9b2-7c4d-7e8f-9a0b-%012d", n)
		m := envelope.Request{CorrelationID: id, ReplyTo: inbox, Deadline: time.Now().Add(time.Minute)}.Message()
		if err := gw.Publish(t.Context(), work, m); err != nil {
			t.Fatalf("request %d: %v", n, err)
		}
		timeout := time.After(10 * time.Second)
		for {
			select {
			case got := <-replies:
				if got == id {
					return
				}
			case <-timeout:
				t.Fatalf("no reply to request %d within 10s", n)
			}
		}
	}
	roundTrip(1)

	// Messages parked in a durable queue nobody consumes right now.
	parkedReady := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- svc.Subscribe(ctx, parked, func(context.Context, brokers.Message) error { return nil },
			brokers.WithReady(func() { close(parkedReady) }))
	}()
	<-parkedReady
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := gw.Publish(t.Context(), parked, brokers.Message{Body: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	baseline := runtime.NumGoroutine()

	if !gw.Ready() || !svc.Ready() {
		t.Fatal("clients not ready before the restart")
	}
	start := stopBroker(t)
	expectUnavailable(t, gw, work)
	expectUnavailable(t, svc, work)
	if gw.Ready() {
		t.Fatal("gateway client ready while the broker is down")
	}
	start()
	back := time.Now()
	took := expectRecovered(t, gw, work, 10*time.Second)
	t.Logf("publishing again %s after start_app/await_startup returned", took)
	roundTrip(2)
	testenv.Eventually(t, 10*time.Second, "clients ready again", func() bool { return gw.Ready() && svc.Ready() })
	if d := time.Since(back); d > 10*time.Second {
		t.Fatalf("request/reply took %s to work again after the restart", d)
	}

	got := make(chan string, 5)
	subscribe(t, svc, parked, func(_ context.Context, m brokers.Message) error { got <- string(m.Body); return nil })
	seen := map[string]bool{}
	timeout := time.After(10 * time.Second)
	for len(seen) < 5 {
		select {
		case b := <-got:
			seen[b] = true
		case <-timeout:
			t.Fatalf("only %d of 5 persistent messages survived the restart", len(seen))
		}
	}
	testenv.Eventually(t, 10*time.Second, "goroutines back to the baseline", func() bool {
		return runtime.NumGoroutine() <= baseline+12 // one more subscription (its connection and workers)
	})
}

// TestLibraryConsumerRecoveryShortfall documents why subscriptions do not use
// amqp091-go's consumer recovery: with it, a delivery received before a
// connection drop and acked after the recovery sends its old delivery tag on
// the reopened channel, and the broker closes the channel (406
// PRECONDITION_FAILED - unknown delivery tag). If this test starts failing,
// the library has learnt to drop stale acks and the subscription's own
// re-consume could be replaced by its topology recovery.
func TestLibraryConsumerRecoveryShortfall(t *testing.T) {
	requireRabbitmqctl(t)
	rabbitmqtest.Shared(t)
	testenv.RequireRabbitMQ(t)
	name := unique("sgtest-raw")
	q := unique("sgtest.raw")
	cleanupQueue(t, q)
	props := amqp.NewConnectionProperties()
	props["connection_name"] = name
	conn, err := amqp.DialConfig(testenv.RabbitMQURL(), amqp.Config{
		Properties: props,
		Recovery:   &amqp.Recovery{ReconnectionConfig: &amqp.ReconnectionConfig{MaxRetryCount: 50, RetryInterval: 200 * time.Millisecond}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"a", "b", "held"} {
		if err := ch.Publish("", q, false, false, amqp.Publishing{Body: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	deliveries, err := ch.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var held amqp.Delivery
	for range 3 {
		select {
		case d := <-deliveries:
			if string(d.Body) == "held" {
				held = d
			} else if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no delivery")
		}
	}
	states := make(chan *amqp.StateChanged, 16)
	ch.NotifyStateChange(states)
	// Reports a reconnection of the channel that follows its first reopen.
	closedAgain := make(chan struct{})
	drain, stop := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(drain)
		sawOpen, reported := false, false
		for {
			var s *amqp.StateChanged
			var ok bool
			select {
			case s, ok = <-states:
			case <-stop:
				return
			}
			if !ok {
				return
			}
			if s.To == amqp.StateOpen {
				sawOpen = true
			}
			if sawOpen && s.To == amqp.StateReconnecting && !reported {
				reported = true
				close(closedAgain)
			}
		}
	}()
	defer func() {
		defer close(stop)
		// amqp091-go closes state channels on Close, except in the close
		// races documented in its client.go (seen once in CI): that is the
		// library's, not what this test documents, and must not hang the
		// suite. The goroutine above then ends with the test binary.
		select {
		case <-drain:
		case <-time.After(10 * time.Second):
			t.Log("amqp091-go did not close the state notification channel after Close (a known close race of the library)")
		}
	}()
	defer func() { _ = conn.Close() }()
	if n := closeConnections(t, name); n != 1 {
		t.Fatalf("closed %d connections, want 1", n)
	}
	// The library re-subscribes the consumer into the same delivery channel.
	var again amqp.Delivery
	select {
	case again = <-deliveries:
	case <-time.After(15 * time.Second):
		t.Fatal("no redelivery after the library's recovery")
	}
	if string(again.Body) != "held" || !again.Redelivered {
		t.Fatalf("redelivered %q (redelivered=%v), want the held message", again.Body, again.Redelivered)
	}
	testenv.Eventually(t, 5*time.Second, "channel reopened", func() bool { return !ch.IsClosed() })
	if err := held.Ack(false); err != nil {
		t.Fatalf("stale ack: %v", err)
	}
	select {
	case <-closedAgain:
		t.Logf("as expected, acking tag %d after the recovery closed the channel (the library then reopens it)", held.DeliveryTag)
		// Closed in the middle of that reopening, the library may never
		// report the channel closed: let it finish first.
		testenv.Eventually(t, 10*time.Second, "channel reopened after the stale ack", func() bool { return !ch.IsClosed() })
	case <-time.After(15 * time.Second):
		// 15 s: in one fresh-clone run under load (351822c) 5 s passed
		// without the channel's close being reported.
		t.Fatal("a stale ack after amqp091-go's recovery no longer breaks the channel: consider its consumer recovery for subscriptions (see subscription in subscribe.go)")
	}
}

// TestDirectReplyToAfterConnectionDrop: in direct reply-to mode the inbox
// consumer lives on the publishing connection and is re-subscribed by
// amqp091-go's topology recovery; request/reply works again after a drop.
// (A reply in flight during the drop is lost: at-most-once, documented.)
func TestDirectReplyToAfterConnectionDrop(t *testing.T) {
	requireRabbitmqctl(t)
	cfg := testConfig(t)
	gwCfg, svcCfg := cfg, cfg
	gwCfg.ConnectionName += "-gw"
	gwCfg.DirectReplyTo = true
	svcCfg.ConnectionName += "-svc"
	gw, svc := dial(t, gwCfg), dial(t, svcCfg)
	work := unique("sgtest.work")
	cleanupQueue(t, work)
	subscribe(t, svc, work, func(ctx context.Context, m brokers.Message) error {
		req, err := envelope.DecodeRequest(m)
		if err != nil {
			return err
		}
		return svc.Publish(ctx, req.ReplyTo, envelope.Reply{CorrelationID: req.CorrelationID}.Message())
	})
	replies := make(chan string, 4)
	subscribe(t, gw, "syncgate.reply.node1", func(_ context.Context, m brokers.Message) error {
		replies <- m.Headers[envelope.CorrelationID]
		return nil
	}, brokers.AsInbox())
	roundTrip := func(n int) {
		t.Helper()
		id := fmt.Sprintf("0190a9b2-7c4d-7e8f-9a0b-%012d", n)
		m := envelope.Request{CorrelationID: id, ReplyTo: "syncgate.reply.node1", Deadline: time.Now().Add(time.Minute)}.Message()
		if err := gw.Publish(t.Context(), work, m); err != nil {
			t.Fatalf("request %d: %v", n, err)
		}
		select {
		case got := <-replies:
			if got != id {
				t.Fatalf("reply %s, want %s", got, id)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no reply to request %d", n)
		}
	}
	roundTrip(1)
	if n := closeConnections(t, gwCfg.ConnectionName+" publisher"); n != 1 {
		t.Fatalf("closed %d connections, want 1", n)
	}
	expectRecovered(t, gw, work+".none", 10*time.Second)
	roundTrip(2)
}
