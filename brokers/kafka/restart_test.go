package kafka

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
)

// echoService answers each request on its reply-to with the request's body.
func echoService(pub brokers.Publisher) brokers.Handler {
	return func(ctx context.Context, m brokers.Message) error {
		req, err := envelope.DecodeRequest(m)
		if err != nil {
			return nil // not ours to retry
		}
		return pub.Publish(ctx, req.ReplyTo, envelope.Reply{CorrelationID: req.CorrelationID, Body: req.Body}.Message())
	}
}

// waiters routes replies from an inbox to the request waiting for each.
type waiters struct {
	mu sync.Mutex
	m  map[string]chan []byte
}

func (w *waiters) add(id string) chan []byte {
	ch := make(chan []byte, 1)
	w.mu.Lock()
	w.m[id] = ch
	w.mu.Unlock()
	return ch
}

func (w *waiters) handler(ctx context.Context, m brokers.Message) error {
	r, err := envelope.DecodeReply(m)
	if err != nil {
		return nil
	}
	w.mu.Lock()
	ch := w.m[r.CorrelationID]
	delete(w.m, r.CorrelationID)
	w.mu.Unlock()
	if ch != nil {
		ch <- r.Body
	}
	return nil
}

// TestBrokerRestart: the broker goes away mid-run. Publish fails fast with
// ErrUnavailable (well within its context's deadline), and once a broker is
// back on the same address with the same data, publishing, the service's
// consumer group and the gateway's reply inbox all resume by themselves.
// The inbox's Ready is false while the broker is away and true again within
// 5s of its return.
func TestBrokerRestart(t *testing.T) {
	if os.Getenv(brokersEnv) != "" {
		t.Skip("stops the broker: kfake only")
	}
	dir := t.TempDir()
	c := newFake(t, kfake.DataDir(dir))
	_, port, _ := net.SplitHostPort(c.brokers[0])
	cfg := c.config()
	service, inbox := c.topic(t, "svc.restart", 4), "syncgate.reply.node-restart"

	gwPub, svcPub := c.publisher(t, cfg), c.publisher(t, cfg)
	subscribe(t, c.subscriber(t, cfg), service, echoService(svcPub))
	w := &waiters{m: map[string]chan []byte{}}
	inboxSub := c.subscriber(t, cfg)
	subscribe(t, inboxSub, inbox, w.handler, brokers.AsInbox(), brokers.WithConcurrency(4))

	request := func(ctx context.Context, body string) (chan []byte, error) {
		id := uuid.NewString()
		ch := w.add(id)
		return ch, gwPub.Publish(ctx, service, envelope.Request{CorrelationID: id, ReplyTo: inbox, Body: []byte(body)}.Message())
	}
	roundTrip := func(body string) {
		t.Helper()
		ch, err := request(publishCtx(t), body)
		if err != nil {
			t.Fatalf("publish %s: %v", body, err)
		}
		if got := recv(t, ch, "reply to "+body); string(got) != body {
			t.Fatalf("reply %q, want %q", got, body)
		}
	}
	roundTrip("before")

	c.fake.Close()
	took := waitUntil(t, 5*time.Second, "Ready false with the broker down", func() bool { return !inboxSub.Ready() })
	t.Logf("Ready false %v after the broker stopped", took.Round(time.Millisecond))
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		_, err := request(ctx, "during-"+strconv.Itoa(i))
		took := time.Since(start)
		cancel()
		if !errors.Is(err, brokers.ErrUnavailable) {
			t.Fatalf("publish with the broker down: %v, want ErrUnavailable", err)
		}
		if took > 3*time.Second {
			t.Fatalf("publish with the broker down took %v: it should fail fast, not wait for its 10s deadline", took)
		}
		t.Logf("publish with the broker down failed after %v: %v", took.Round(time.Millisecond), err)
	}

	portN, _ := strconv.Atoi(port)
	c2, err := kfake.NewCluster(kfake.Ports(portN), kfake.DataDir(dir),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(maxBrokerMessage)}))
	if err != nil {
		t.Fatalf("restart kfake on port %s: %v", port, err)
	}
	t.Cleanup(c2.Close)
	took = waitUntil(t, 5*time.Second, "Ready true within 5s of the broker's return", inboxSub.Ready)
	t.Logf("Ready true %v after the broker restarted", took.Round(time.Millisecond))

	// Publishing recovers on the next attempt that reaches the broker.
	var ch chan []byte
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ch, err = request(ctx, "after")
		cancel()
		if err == nil {
			t.Logf("publish recovered at attempt %d", attempt)
			break
		}
		if attempt == 100 {
			t.Fatalf("publish did not recover in %d attempts after the broker's return: %v", attempt, err)
		}
		<-poll.C
	}
	// The request is on the broker: the service's group rejoins, handles it,
	// and the reply reaches the inbox, whose readers reconnected.
	if got := recv(t, ch, "reply after the restart"); string(got) != "after" {
		t.Fatalf("reply %q", got)
	}
	roundTrip("after-2")
}
