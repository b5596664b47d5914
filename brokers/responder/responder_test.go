package responder_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/brokers/responder"
	"github.com/syncgate/syncgate/brokers/responder/demo"
)

type published struct {
	dest string
	msg  brokers.Message
}

// recorder is a Publisher that records what it published. While fails is
// positive, each Publish fails with err and decrements it; fails < 0 fails
// every Publish.
type recorder struct {
	out      []published
	err      error
	fails    int
	attempts int
}

func (r *recorder) Publish(_ context.Context, dest string, m brokers.Message) error {
	r.attempts++
	if r.err != nil && r.fails != 0 {
		r.fails--
		return r.err
	}
	r.out = append(r.out, published{dest, m})
	return nil
}

func service(pub *recorder) *responder.Service {
	return &responder.Service{Publisher: pub, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func request(mut func(*envelope.Request)) brokers.Message {
	r := envelope.Request{
		CorrelationID: uuid.NewString(), ReplyTo: "replies.n1", Deadline: time.Now().Add(time.Minute),
		ContentType: "text/plain", Method: "POST", Path: "/demo/echo", Query: "ms=1",
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Body: []byte("hi"),
	}
	if mut != nil {
		mut(&r)
	}
	return r.Message()
}

// reply runs h on m and returns the single reply it published.
func reply(t *testing.T, h responder.Handler, m brokers.Message) envelope.Reply {
	t.Helper()
	pub := &recorder{}
	if err := service(pub).Handler(h)(t.Context(), m); err != nil {
		t.Fatalf("handler: %v", err)
	}
	if len(pub.out) != 1 {
		t.Fatalf("%d replies published, want 1", len(pub.out))
	}
	if pub.out[0].dest != "replies.n1" {
		t.Errorf("reply sent to %q, want the request's reply-to", pub.out[0].dest)
	}
	rep, err := envelope.DecodeReply(pub.out[0].msg)
	if err != nil {
		t.Fatalf("reply does not decode: %v", err)
	}
	if rep.CorrelationID != m.Headers[envelope.CorrelationID] {
		t.Errorf("reply correlation id %q, want %q", rep.CorrelationID, m.Headers[envelope.CorrelationID])
	}
	return rep
}

func TestEcho(t *testing.T) {
	m := request(nil)
	rep := reply(t, demo.Echo, m)
	if rep.StatusCode() != 200 || string(rep.Body) != "hi" || rep.ContentType != "text/plain" {
		t.Errorf("reply %+v", rep)
	}
	if rep.TraceParent != m.Headers[envelope.TraceParent] {
		t.Errorf("traceparent %q not propagated", rep.TraceParent)
	}
}

func TestErrorsBecomeProblemReplies(t *testing.T) {
	tests := []struct {
		name   string
		h      responder.Handler
		status int
	}{
		{"error", func(context.Context, responder.Request) (responder.Reply, error) {
			return responder.Reply{}, errors.New("db password is hunter2")
		}, 500},
		{"panic", func(context.Context, responder.Request) (responder.Reply, error) { panic("boom") }, 500},
		{"status error", func(context.Context, responder.Request) (responder.Reply, error) {
			return responder.Reply{}, &responder.StatusError{Status: 422, Err: errors.New("no")}
		}, 422},
		{"status error out of range", func(context.Context, responder.Request) (responder.Reply, error) {
			return responder.Reply{}, &responder.StatusError{Status: 200, Err: errors.New("odd")}
		}, 500},
		{"demo sleep with a bad ms", demo.Sleep, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := request(func(r *envelope.Request) { r.Query = "ms=-5" })
			rep := reply(t, tt.h, m)
			if rep.StatusCode() != tt.status || rep.ContentType != "application/problem+json" {
				t.Fatalf("reply %d %q, want %d problem", rep.StatusCode(), rep.ContentType, tt.status)
			}
			var p map[string]any
			if err := json.Unmarshal(rep.Body, &p); err != nil {
				t.Fatalf("body %s: %v", rep.Body, err)
			}
			if strings.Contains(string(rep.Body), "hunter2") {
				t.Error("the error's text leaked into the reply")
			}
		})
	}
}

func TestDroppedWithoutReply(t *testing.T) {
	called := false
	h := func(context.Context, responder.Request) (responder.Reply, error) {
		called = true
		return responder.Reply{}, nil
	}
	for name, m := range map[string]brokers.Message{
		"no correlation id":  {Headers: map[string]string{envelope.ReplyTo: "r"}},
		"bad correlation id": request(func(r *envelope.Request) { r.CorrelationID = "x" }),
		"no reply-to":        request(func(r *envelope.Request) { r.ReplyTo = "" }),
		"expired":            request(func(r *envelope.Request) { r.Deadline = time.Now().Add(-time.Second) }),
	} {
		t.Run(name, func(t *testing.T) {
			called = false
			pub := &recorder{}
			if err := service(pub).Handler(h)(t.Context(), m); err != nil {
				t.Fatalf("handler returned %v; garbage must be acknowledged, not redelivered", err)
			}
			if called || len(pub.out) != 0 {
				t.Errorf("handler called=%v, %d replies; want neither", called, len(pub.out))
			}
		})
	}
}

func TestDeadlinePassingWhileHandlingSendsNoReply(t *testing.T) {
	m := request(func(r *envelope.Request) { r.Deadline = time.Now().Add(20 * time.Millisecond); r.Query = "ms=10000" })
	pub := &recorder{}
	if err := service(pub).Handler(demo.Sleep)(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	if len(pub.out) != 0 {
		t.Errorf("%d replies after the deadline", len(pub.out))
	}
}

func TestStoppingSubscriptionRedelivers(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	m := request(func(r *envelope.Request) { r.Query = "ms=10000" })
	h := func(ctx context.Context, req responder.Request) (responder.Reply, error) {
		cancel() // the subscription stops while the handler runs
		return demo.Sleep(ctx, req)
	}
	pub := &recorder{}
	err := service(pub).Handler(h)(ctx, m)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled so the broker redelivers", err)
	}
	if len(pub.out) != 0 {
		t.Errorf("%d replies from a stopped handler", len(pub.out))
	}
}

// TestReplyPublishRetriedWhileUnavailable (issue 13, point 4): a reply the
// broker cannot take yet is retried, the delivery held meanwhile, instead
// of failing the delivery (which would spend the request's attempts in
// milliseconds and dead-letter it).
func TestReplyPublishRetriedWhileUnavailable(t *testing.T) {
	pub := &recorder{err: fmt.Errorf("%w: connection down", brokers.ErrUnavailable), fails: 3}
	m := request(nil)
	if err := service(pub).Handler(demo.Echo)(t.Context(), m); err != nil {
		t.Fatalf("handler returned %v; a reply that cannot be published yet must not fail the delivery", err)
	}
	if pub.attempts != 4 || len(pub.out) != 1 {
		t.Fatalf("%d attempts, %d published; want 4 attempts and the reply published once", pub.attempts, len(pub.out))
	}
	if got := pub.out[0].msg.Headers[envelope.CorrelationID]; got != m.Headers[envelope.CorrelationID] {
		t.Errorf("published correlation id %q, want %q", got, m.Headers[envelope.CorrelationID])
	}
}

// TestReplyDroppedAtDeadline: a reply still unpublishable when the request's
// deadline passes is dropped (acknowledged: nobody waits for it), after
// retrying until then and not much longer.
func TestReplyDroppedAtDeadline(t *testing.T) {
	pub := &recorder{err: brokers.ErrUnavailable, fails: -1}
	m := request(func(r *envelope.Request) { r.Deadline = time.Now().Add(300 * time.Millisecond) })
	start := time.Now()
	if err := service(pub).Handler(demo.Echo)(t.Context(), m); err != nil {
		t.Fatalf("handler returned %v, want nil: after the deadline the request is dropped, not redelivered", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("handler returned %s after the start, want soon after the deadline (300ms)", took)
	}
	if pub.attempts < 2 || len(pub.out) != 0 {
		t.Errorf("%d attempts, %d published; want retries and nothing published", pub.attempts, len(pub.out))
	}
}

// TestReplyPublishStopsWithTheSubscription: while retrying, the end of the
// subscription's context returns its error, so the broker redelivers the
// request to another consumer.
func TestReplyPublishStopsWithTheSubscription(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	pub := &recorder{err: brokers.ErrUnavailable, fails: -1}
	time.AfterFunc(200*time.Millisecond, cancel)
	err := service(pub).Handler(demo.Echo)(ctx, request(nil))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled so the broker redelivers", err)
	}
}

// TestReplyPublishFailureRedelivers: an error other than unavailability
// or an unknown address (the publisher closed) fails the delivery at once.
func TestReplyPublishFailureRedelivers(t *testing.T) {
	pub := &recorder{err: brokers.ErrClosed, fails: -1}
	err := service(pub).Handler(demo.Echo)(t.Context(), request(nil))
	if !errors.Is(err, brokers.ErrClosed) {
		t.Fatalf("err = %v, want the publish error so the request is redelivered", err)
	}
	if pub.attempts != 1 {
		t.Errorf("%d attempts, want 1", pub.attempts)
	}
}

// TestUnroutableReplyRetried: a reply address the broker does not know
// for a moment (a Kafka reply topic lost in an empty restart, until the
// gateway recreates it) is retried; the request is not handled again.
func TestUnroutableReplyRetried(t *testing.T) {
	pub := &recorder{err: fmt.Errorf("%w: unknown topic", brokers.ErrUnroutable), fails: 3}
	calls := 0
	h := func(ctx context.Context, req responder.Request) (responder.Reply, error) {
		calls++
		return demo.Echo(ctx, req)
	}
	if err := service(pub).Handler(h)(t.Context(), request(nil)); err != nil {
		t.Fatalf("handler returned %v; an unroutable reply must not fail the delivery", err)
	}
	if calls != 1 || pub.attempts != 4 || len(pub.out) != 1 {
		t.Fatalf("%d handler calls, %d attempts, %d published; want 1, 4, 1", calls, pub.attempts, len(pub.out))
	}
}

// TestUnroutableReplyDropped: a reply address that stays unknown (its node
// is gone) is given up on after UnroutableReplyRetry: the delivery is
// acknowledged, not redelivered, so the request is not handled again (its
// side effects would repeat, and then it would be dead-lettered).
func TestUnroutableReplyDropped(t *testing.T) {
	if testing.Short() {
		t.Skip("waits UnroutableReplyRetry")
	}
	pub := &recorder{err: brokers.ErrUnroutable, fails: -1}
	start := time.Now()
	if err := service(pub).Handler(demo.Echo)(t.Context(), request(nil)); err != nil {
		t.Fatalf("handler returned %v, want nil: the request is done, its reply has nowhere to go", err)
	}
	took := time.Since(start)
	if took < responder.UnroutableReplyRetry || took > responder.UnroutableReplyRetry+3*time.Second {
		t.Errorf("gave up after %v, want about %v", took, responder.UnroutableReplyRetry)
	}
	if pub.attempts < 3 || len(pub.out) != 0 {
		t.Errorf("%d attempts, %d published; want retries and nothing published", pub.attempts, len(pub.out))
	}
}

// TestLogLinesCarryTheCorrelationID: a line about a request names its
// correlation id and the component, and its source is the SDK's call site,
// not the helper that adds the id.
func TestLogLinesCarryTheCorrelationID(t *testing.T) {
	var buf strings.Builder
	svc := service(&recorder{})
	svc.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{AddSource: true}))
	m := request(nil)
	failing := func(context.Context, responder.Request) (responder.Reply, error) {
		return responder.Reply{}, errors.New("db down")
	}
	if err := svc.Handler(failing)(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	var line struct {
		Msg           string `json:"msg"`
		Component     string `json:"component"`
		CorrelationID string `json:"correlation_id"`
		Error         string `json:"error"`
		Source        struct {
			File string `json:"file"`
		} `json:"source"`
	}
	if err := json.Unmarshal([]byte(buf.String()), &line); err != nil {
		t.Fatalf("log %q: %v", buf.String(), err)
	}
	if line.Msg != "handler failed" || line.Component != "responder" || line.Error != "db down" ||
		line.CorrelationID != m.Headers[envelope.CorrelationID] {
		t.Errorf("log line %+v, want handler failed, component responder, the error and correlation id %s", line, m.Headers[envelope.CorrelationID])
	}
	if !strings.HasSuffix(line.Source.File, "responder/responder.go") {
		t.Errorf("source %q, want the SDK's call site in responder.go", line.Source.File)
	}
}
