package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
	"github.com/syncgate/syncgate/outbox"
)

// A request the broker does not take is queued in the outbox of a route
// that has one and answered 202, its poll saying "queued" until the relay
// publishes it; its reply then completes it as any other's. A sync route
// never answers 202, a route without outbox 503, and a full outbox
// ErrOutboxFull, leaving no record behind.
func TestOutbox(t *testing.T) {
	for _, mode := range []gateway.Mode{gateway.ModeAsync, gateway.ModeAuto, gateway.ModeSync} {
		t.Run(string(mode), func(t *testing.T) {
			ctx := t.Context()
			box, err := outbox.OpenBolt(filepath.Join(t.TempDir(), "outbox.db"), 1)
			if err != nil {
				t.Fatal(err)
			}
			defer box.Close()
			pub := &recorder{msgs: make(chan brokers.Message, 16), err: brokers.ErrUnavailable}
			store := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
			gw := gateway.New(gateway.Config{ReplyTo: "replies.test", Outbox: box}, pub, store)
			defer gw.Close()
			rt := route(mode)
			rt.Outbox = true
			do := func(r *gateway.Route) (gateway.Outcome, error) {
				return gw.Do(ctx, &gateway.Request{Route: r, Message: envelope.Request{Method: "POST", Path: "/x", Body: []byte("ping")}})
			}
			out, err := do(rt)
			if mode == gateway.ModeSync {
				if !errors.Is(err, gateway.ErrUnavailable) || out.Accepted {
					t.Fatalf("sync route: %+v, %v; want ErrUnavailable", out, err)
				}
				if depth, _, _ := box.Stats(ctx); depth != 0 {
					t.Errorf("a sync route queued %d requests", depth)
				}
				return
			}
			if err != nil || !out.Accepted || !out.Queued {
				t.Fatalf("Do with the broker down: %+v, %v; want 202 queued", out, err)
			}
			res, err := gw.Result(ctx, out.ID, "")
			if err != nil || res.State != correlation.StatePending || !res.Queued {
				t.Fatalf("poll of the queued request: %+v, %v", res, err)
			}

			// Full: refused, nothing left behind.
			before := store.Len()
			if _, err := do(rt); !errors.Is(err, gateway.ErrOutboxFull) {
				t.Errorf("Do with the outbox full: %v, want ErrOutboxFull", err)
			}
			if store.Len() != before {
				t.Errorf("a refused request left a record: %d, want %d", store.Len(), before)
			}
			// A permanent refusal is not queued: it would never pass.
			pub.err = fmt.Errorf("%w: no such topic", brokers.ErrUnroutable)
			if _, err := do(rt); !errors.Is(err, gateway.ErrUnavailable) || errors.Is(err, gateway.ErrOutboxFull) {
				t.Errorf("unroutable: %v, want ErrUnavailable, not queued", err)
			}
			pub.err = brokers.ErrUnavailable
			// Without outbox: 503 as before.
			plain := route(mode)
			if _, err := do(plain); !errors.Is(err, gateway.ErrUnavailable) || errors.Is(err, gateway.ErrOutboxFull) {
				t.Errorf("route without outbox: %v, want ErrUnavailable", err)
			}

			// The relay publishes it; the service replies.
			items, err := box.Claim(ctx, 10, time.Minute)
			if err != nil || len(items) != 1 || items[0].ID != out.ID || items[0].Dest != rt.Destination {
				t.Fatalf("queued items: %+v, %v", items, err)
			}
			req, err := envelope.DecodeRequest(items[0].Message)
			if err != nil || req.CorrelationID != out.ID || req.ReplyTo != "replies.test" || string(req.Body) != "ping" {
				t.Fatalf("queued message: %+v, %v", req, err)
			}
			if err := box.Done(ctx, out.ID); err != nil {
				t.Fatal(err)
			}
			if res, _ := gw.Result(ctx, out.ID, ""); res.Queued || res.State != correlation.StatePending {
				t.Errorf("poll once published: %+v, want pending, not queued", res)
			}
			if o, err := gw.DispatchReply(context.Background(), envelope.Reply{CorrelationID: out.ID, Status: 200, Body: []byte("pong")}.Message()); err != nil || o != gateway.ReplyStored {
				t.Fatalf("reply: %v, %v; want stored", o, err)
			}
			if res, _ := gw.Result(ctx, out.ID, ""); res.State != correlation.StateDone || string(res.Reply.Body) != "pong" {
				t.Errorf("poll after the reply: %+v", res)
			}
		})
	}
}

// A queued request the broker then refuses for good (the relay drops it)
// is answered with a 502 broker-refused problem at once, which its
// callback gets too, instead of staying pending until its deadline.
func TestOutboxRefusedForGood(t *testing.T) {
	ctx := t.Context()
	box, err := outbox.OpenBolt(filepath.Join(t.TempDir(), "outbox.db"), 10)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	pub := &recorder{msgs: make(chan brokers.Message, 16), err: brokers.ErrUnavailable}
	store := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
	gw := gateway.New(gateway.Config{ReplyTo: "replies.test", Outbox: box}, pub, store)
	defer gw.Close()
	rt := route(gateway.ModeAsync)
	rt.Outbox, rt.CallbackWindow = true, time.Hour
	out, err := gw.Do(ctx, &gateway.Request{Route: rt, Callback: "https://hooks.example/x", Message: envelope.Request{Method: "POST", Path: "/x"}})
	if err != nil || !out.Queued {
		t.Fatalf("Do = %+v, %v", out, err)
	}
	gw.Refused(ctx, out.ID)
	res, err := gw.Result(ctx, out.ID, "")
	if err != nil || res.State != correlation.StateDone || res.Reply.Status != 502 || res.Reply.ContentType != "application/problem+json" {
		t.Fatalf("Result = %+v, %v; want the 502 problem", res, err)
	}
	var p struct{ Type string }
	if err := json.Unmarshal(res.Reply.Body, &p); err != nil || p.Type != "urn:syncgate:problem:broker-refused" {
		t.Errorf("problem %s: %v", res.Reply.Body, err)
	}
	if res.Delivery == nil || res.Delivery.State != correlation.DeliveryPending {
		t.Errorf("delivery %+v: want the callback queued", res.Delivery)
	}
}
