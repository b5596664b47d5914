package responder_test

import (
	"context"
	"errors"
	"testing"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/brokers/responder"
	"github.com/syncgate/syncgate/brokers/responder/demo"
)

// Progress sends interim messages to the request's reply address, marked
// as progress, with its correlation id and trace context, in order and
// before the reply; outside a handler it fails.
func TestProgress(t *testing.T) {
	pub := &recorder{}
	m := request(func(r *envelope.Request) { r.Query = "ms=30&steps=3" })
	if err := service(pub).Handler(demo.Sleep)(t.Context(), m); err != nil {
		t.Fatalf("handler: %v", err)
	}
	if len(pub.out) != 3 {
		t.Fatalf("%d messages published, want 2 progress and a reply", len(pub.out))
	}
	for i, p := range pub.out {
		rep, err := envelope.DecodeReply(p.msg)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if p.dest != "replies.n1" || rep.CorrelationID != m.Headers[envelope.CorrelationID] ||
			rep.TraceParent != m.Headers[envelope.TraceParent] {
			t.Errorf("message %d to %q: %+v", i, p.dest, rep)
		}
		wantProgress := i < 2
		if rep.Progress != wantProgress {
			t.Errorf("message %d: Progress = %v, want %v", i, rep.Progress, wantProgress)
		}
		if wantProgress {
			want := `{"step":` + string(rune('1'+i)) + `,"of":3}`
			if string(rep.Body) != want || rep.ContentType != "application/json" {
				t.Errorf("progress %d: %s %q, want %q", i, rep.ContentType, rep.Body, want)
			}
		}
	}
	if err := responder.Progress(context.Background(), "text/plain", []byte("x")); !errors.Is(err, responder.ErrNoRequest) {
		t.Errorf("Progress outside a handler: %v, want ErrNoRequest", err)
	}
	pub = &recorder{err: errors.New("broker down"), fails: 1}
	h := func(ctx context.Context, req responder.Request) (responder.Reply, error) {
		if err := responder.Progress(ctx, "text/plain", []byte("half")); err == nil {
			t.Error("Progress on a failing publisher returned nil")
		}
		return responder.Reply{Body: []byte("done")}, nil
	}
	if err := service(pub).Handler(h)(t.Context(), request(nil)); err != nil {
		t.Fatalf("handler: %v", err)
	}
	if len(pub.out) != 1 || string(pub.out[0].msg.Body) != "done" {
		t.Errorf("after a failed progress the reply still goes out: %+v", pub.out)
	}
}
