package clustertest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
)

// decision is what the test service does with one request: answer it at
// once to node's reply address, or hold it for the test to answer later
// (Answer) or never.
type decision struct {
	node string // answer to this node's reply address
	hold bool
}

// decider picks what the service does with req, which node owner sent.
type decider func(req envelope.Request, owner string) decision

// service is the test service: it consumes the cluster's request
// destination in a consumer group (on RabbitMQ: competing for its queue),
// as a real service would, and answers each request with its own body, on
// the reply address its decide function picks. It records every request
// it saw, so that tests can answer held requests and check that each
// request was seen once.
type service struct {
	t      *testing.T
	c      *cluster
	broker serviceBroker
	decide decider
	held   chan envelope.Request

	mu   sync.Mutex
	seen map[string]int // correlation id → times seen

	answered  atomic.Int64 // replies published
	misrouted atomic.Int64 // of which to a node that did not send the request
}

// startService consumes c's request destination until the test ends and
// returns once the service is positioned.
func startService(t *testing.T, c *cluster, decide decider) *service {
	t.Helper()
	b := c.dialService()
	s := &service{t: t, c: c, broker: b, decide: decide, held: make(chan envelope.Request, 10_000), seen: make(map[string]int)}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := b.Subscribe(ctx, c.requests, s.handle, brokers.WithGroup("clustertest.service"),
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

func (s *service) handle(ctx context.Context, m brokers.Message) error {
	req, err := envelope.DecodeRequest(m)
	if err != nil {
		s.t.Errorf("test service: invalid request: %v", err)
		return nil
	}
	s.mu.Lock()
	s.seen[req.CorrelationID]++
	s.mu.Unlock()
	d := s.decide(req, s.c.owner(req))
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
// reply address.
func (s *service) Answer(ctx context.Context, req envelope.Request, node string) error {
	rep := envelope.Reply{CorrelationID: req.CorrelationID, ContentType: req.ContentType, Body: req.Body}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.broker.Publish(ctx, s.c.replyAddr(node), rep.Message()); err != nil {
		return fmt.Errorf("test service: reply to %s: %w", node, err)
	}
	s.answered.Add(1)
	if node != s.c.owner(req) {
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
// them it saw more than once (the broker redelivered them).
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
