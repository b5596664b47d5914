package responder_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/brokers/responder"
	"github.com/syncgate/syncgate/brokers/responder/demo"
)

// givingUp is a Subscriber whose backend gives up on one message at once:
// it calls the DeadLetter callback, as a backend does after the last failed
// attempt, and returns.
type givingUp struct {
	m   brokers.Message
	err error
}

func (g givingUp) Subscribe(ctx context.Context, _ string, _ brokers.Handler, opts ...brokers.SubscribeOption) error {
	brokers.NewSubscribeConfig(opts...).DeadLetter(ctx, g.m, g.err)
	return nil
}

var errPoison = errors.New("handler failed on every attempt")

// TestDeadLetteredRequestAnswered502 (issue 13, point 12): a request the
// backend gives up on is answered at once with a 502 dead-lettered problem
// to its reply-to, so the caller does not wait out its deadline; a
// DeadLetter callback the caller passed runs too.
func TestDeadLetteredRequestAnswered502(t *testing.T) {
	pub := &recorder{}
	m := request(nil)
	theirs := make(chan error, 1)
	svc := service(pub)
	svc.Subscriber = givingUp{m, errPoison}
	err := svc.Serve(t.Context(), "work", demo.Echo, brokers.WithDeadLetter(func(_ context.Context, _ brokers.Message, err error) {
		theirs <- err
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(pub.out) != 1 || pub.out[0].dest != "replies.n1" {
		t.Fatalf("published %+v, want one reply to the request's reply-to", pub.out)
	}
	rep, err := envelope.DecodeReply(pub.out[0].msg)
	if err != nil {
		t.Fatalf("the failure reply does not decode: %v", err)
	}
	id := m.Headers[envelope.CorrelationID]
	if rep.CorrelationID != id || rep.StatusCode() != 502 || rep.ContentType != "application/problem+json" {
		t.Fatalf("reply %s %d %q, want %s 502 problem", rep.CorrelationID, rep.StatusCode(), rep.ContentType, id)
	}
	if rep.TraceParent != m.Headers[envelope.TraceParent] {
		t.Errorf("traceparent %q not propagated", rep.TraceParent)
	}
	var p struct {
		Type          string `json:"type"`
		CorrelationID string `json:"correlation_id"`
		Detail        string `json:"detail"`
	}
	if err := json.Unmarshal(rep.Body, &p); err != nil {
		t.Fatalf("body %s: %v", rep.Body, err)
	}
	if p.Type != "urn:syncgate:problem:"+envelope.FailureDeadLettered || p.CorrelationID != id {
		t.Errorf("problem %+v, want type dead-lettered for %s", p, id)
	}
	if !strings.Contains(p.Detail, "every attempt") || strings.Contains(string(rep.Body), errPoison.Error()) {
		t.Errorf("detail %q: want it to say the service failed on every attempt, without the handler's error", p.Detail)
	}
	select {
	case err := <-theirs:
		if !errors.Is(err, errPoison) {
			t.Errorf("the caller's DeadLetter callback got %v, want the handler's error", err)
		}
	default:
		t.Error("the caller's DeadLetter callback was not called")
	}
}

// TestDeadLetteredRetriedWhileUnavailable: the 502 is published like a
// reply, retried while the broker is unavailable.
func TestDeadLetteredRetriedWhileUnavailable(t *testing.T) {
	pub := &recorder{err: brokers.ErrUnavailable, fails: 2}
	service(pub).DeadLettered(t.Context(), request(nil), errPoison)
	if pub.attempts != 3 || len(pub.out) != 1 {
		t.Fatalf("%d attempts, %d published; want the failure reply published on the third", pub.attempts, len(pub.out))
	}
}

// TestDeadLetteredWithoutCaller: nobody is answered when nobody can be
// (no valid id, no reply-to) or waits (the deadline passed).
func TestDeadLetteredWithoutCaller(t *testing.T) {
	for name, m := range map[string]brokers.Message{
		"no correlation id":  {Headers: map[string]string{envelope.ReplyTo: "r"}},
		"bad correlation id": request(func(r *envelope.Request) { r.CorrelationID = "x" }),
		"no reply-to":        request(func(r *envelope.Request) { r.ReplyTo = "" }),
		"expired":            request(func(r *envelope.Request) { r.Deadline = time.Now().Add(-time.Second) }),
	} {
		t.Run(name, func(t *testing.T) {
			pub := &recorder{}
			svc := service(pub)
			svc.Subscriber = givingUp{m, errPoison}
			if err := svc.Serve(t.Context(), "work", demo.Echo); err != nil {
				t.Fatal(err)
			}
			if len(pub.out) != 0 {
				t.Errorf("%d replies published, want none", len(pub.out))
			}
		})
	}
}

var _ responder.Subscriber = givingUp{}
