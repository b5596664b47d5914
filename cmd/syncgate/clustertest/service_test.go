package clustertest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/brokers/kafka"
)

// requestTopic is the topic every route of the test configuration
// publishes to; the test service consumes it.
const requestTopic = "clustertest.requests"

// replyAddr is a node's reply topic, the default of cmd/syncgate/node.
func replyAddr(node string) string { return "syncgate.reply." + node }

// nodeOf returns the node whose reply address is addr.
func nodeOf(addr string) string { return strings.TrimPrefix(addr, "syncgate.reply.") }

// decision is what the test service does with one request: answer it at
// once to node's reply topic, or hold it for the test to answer later
// (Answer) or never.
type decision struct {
	node string // answer to this node's reply topic
	hold bool
}

// service is the test service: it consumes the request topic in a
// consumer group, as a real service would, and answers each request with
// its own body, on the reply topic its decide function picks. It records
// every request it saw, so that tests can answer held requests and check
// that each request was seen once.
type service struct {
	t      *testing.T
	broker *kafka.Broker
	decide func(req envelope.Request) decision
	held   chan envelope.Request

	mu   sync.Mutex
	seen map[string]int // correlation id → times seen

	answered  atomic.Int64 // replies published
	misrouted atomic.Int64 // of which to a node that did not send the request
}

// startService consumes requestTopic until the test ends and returns once
// the service is positioned.
func startService(t *testing.T, brokerAddrs []string, decide func(req envelope.Request) decision) *service {
	t.Helper()
	b, err := kafka.New(kafkaConfig(brokerAddrs), kafka.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	s := &service{t: t, broker: b, decide: decide, held: make(chan envelope.Request, 10_000), seen: make(map[string]int)}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := b.Subscribe(ctx, requestTopic, s.handle, brokers.WithGroup("clustertest.service"),
			brokers.WithConcurrency(64), brokers.WithReady(func() { close(ready) }))
		if err != nil && ctx.Err() == nil {
			t.Errorf("test service: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = b.Close()
	})
	select {
	case <-ready:
	case <-done:
		t.Fatal("test service stopped before it was positioned")
	case <-time.After(60 * time.Second):
		t.Fatal("test service not positioned within 60s")
	}
	return s
}

// kafkaConfig is the Kafka configuration of the test service and the
// nodes: quick group heartbeats and fetches; a generous write timeout,
// since under -race on a loaded 2-core machine one produce to kfake can
// take seconds.
func kafkaConfig(addrs []string) kafka.Config {
	return kafka.Config{
		Brokers:           addrs,
		HeartbeatInterval: 200 * time.Millisecond,
		SessionTimeout:    6 * time.Second, // kfake's minimum
		JoinGroupBackoff:  200 * time.Millisecond,
		CommitInterval:    200 * time.Millisecond,
		MaxWait:           250 * time.Millisecond,
		WriteTimeout:      30 * time.Second,
	}
}

func (s *service) handle(ctx context.Context, m brokers.Message) error {
	req, err := envelope.DecodeRequest(m)
	if err != nil {
		s.t.Errorf("test service: invalid request: %v", err)
		return nil
	}
	s.mu.Lock()
	s.seen[req.CorrelationID]++
	s.mu.Unlock()
	d := s.decide(req)
	if d.hold {
		select {
		case s.held <- req:
		default:
			s.t.Errorf("test service: more than %d held requests", cap(s.held))
		}
		return nil
	}
	return s.Answer(ctx, req, d.node)
}

// Answer publishes req's reply (status 200, its body echoed) to node's
// reply topic.
func (s *service) Answer(ctx context.Context, req envelope.Request, node string) error {
	rep := envelope.Reply{CorrelationID: req.CorrelationID, ContentType: req.ContentType, Body: req.Body}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.broker.Publish(ctx, replyAddr(node), rep.Message()); err != nil {
		return fmt.Errorf("test service: reply to %s: %w", node, err)
	}
	s.answered.Add(1)
	if node != nodeOf(req.ReplyTo) {
		s.misrouted.Add(1)
	}
	return nil
}

// Held returns the next n held requests, failing the test if they do not
// come within timeout.
func (s *service) Held(n int, timeout time.Duration) []envelope.Request {
	s.t.Helper()
	out := make([]envelope.Request, 0, n)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for len(out) < n {
		select {
		case req := <-s.held:
			out = append(out, req)
		case <-deadline.C:
			s.t.Fatalf("the test service holds %d requests after %v, want %d", len(out), timeout, n)
		}
	}
	return out
}

// Seen returns how many distinct requests the service saw, and how many of
// them it saw more than once (Kafka redelivered them).
func (s *service) Seen() (distinct, repeated int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.seen {
		if n > 1 {
			repeated++
		}
	}
	return len(s.seen), repeated
}

// SeenID reports how many times the service saw id.
func (s *service) SeenID(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[id]
}
