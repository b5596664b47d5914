package gateway_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
)

func newBoundedFixture(t *testing.T, maxEntries int, idem gateway.IdempotencyStore) *fixture {
	t.Helper()
	pub := &recorder{msgs: make(chan brokers.Message, 16)}
	store := correlation.NewMemoryStore(correlation.MemoryStoreConfig{MaxEntries: maxEntries})
	gw := gateway.New(gateway.Config{ReplyTo: "replies.test", Idempotency: idem}, pub, store)
	t.Cleanup(gw.Close)
	return &fixture{gw: gw, pub: pub, store: store}
}

// nothingPublished fails if a message was published.
func (f *fixture) nothingPublished(t *testing.T) {
	t.Helper()
	synctest.Wait()
	select {
	case m := <-f.pub.msgs:
		t.Fatalf("published %v", m.Headers)
	default:
	}
}

func wantStoreFull(t *testing.T, what string, r result) {
	t.Helper()
	if !errors.Is(r.err, gateway.ErrStoreFull) || errors.Is(r.err, gateway.ErrStore) || r.out.Accepted {
		t.Fatalf("%s on a full store: %+v, %v; want ErrStoreFull", what, r.out, r.err)
	}
}

// A full result store refuses, before publishing, every request that may
// need a record (async, auto, keyed), and serves sync routes as ever.
func TestFullStoreRefusesNewRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newBoundedFixture(t, 2, nil)
		for range 2 {
			if r := <-f.do(t.Context(), route(gateway.ModeAsync), gateway.Preferences{}); !r.out.Accepted {
				t.Fatalf("async Do = %+v, %v", r.out, r.err)
			}
			<-f.pub.msgs
		}
		wantStoreFull(t, "async", <-f.do(t.Context(), route(gateway.ModeAsync), gateway.Preferences{}))
		wantStoreFull(t, "auto", <-f.do(t.Context(), route(gateway.ModeAuto), gateway.Preferences{}))
		wantStoreFull(t, "respond-async", <-f.do(t.Context(), route(gateway.ModeAuto), gateway.Preferences{RespondAsync: true}))
		keyed := make(chan result, 1)
		go func() {
			out, err := f.gw.Do(t.Context(), &gateway.Request{Route: route(gateway.ModeSync),
				Message: envelope.Request{Method: "POST", Path: "/x", IdempotencyKey: "k", Body: []byte("ping")}})
			keyed <- result{out: out, err: err}
		}()
		wantStoreFull(t, "keyed", <-keyed)
		f.nothingPublished(t)

		res := f.do(t.Context(), route(gateway.ModeSync), gateway.Preferences{})
		f.reply(t, <-f.pub.msgs, "pong")
		if r := <-res; r.err != nil || string(r.out.Reply.Body) != "pong" {
			t.Fatalf("sync Do on a full store = %+v, %v", r.out, r.err)
		}
	})
}

// An auto request admitted while there was room keeps its promise when its
// wait runs out, even if the store filled up meanwhile: it is answered 202
// and its reply is stored.
func TestFullStoreKeepsAdmittedAutoRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newBoundedFixture(t, 1, nil)
		auto := f.do(t.Context(), route(gateway.ModeAuto), gateway.Preferences{})
		m := <-f.pub.msgs
		if r := <-f.do(t.Context(), route(gateway.ModeAsync), gateway.Preferences{}); !r.out.Accepted {
			t.Fatalf("async Do = %+v, %v", r.out, r.err)
		}
		<-f.pub.msgs
		r := <-auto // after the route's 2 s wait
		if r.err != nil || !r.out.Accepted {
			t.Fatalf("auto Do after its wait, the store full = %+v, %v; want 202", r.out, r.err)
		}
		if f.store.Len() != 2 {
			t.Fatalf("Len() = %d, want 2 (one over the cap)", f.store.Len())
		}
		if out := f.reply(t, m, "late"); out != gateway.ReplyStored {
			t.Fatalf("reply outcome %v, want stored", out)
		}
		res, err := f.gw.Result(t.Context(), r.out.ID, "")
		if err != nil || res.State != correlation.StateDone || string(res.Reply.Body) != "late" {
			t.Fatalf("Result = %+v, %v", res, err)
		}
	})
}

// A full idempotency store refuses a new key with ErrStoreFull (503 with
// Retry-After), not ErrStore, and publishes nothing.
func TestFullIdempotencyStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		idem := correlation.NewMemoryIdempotency(correlation.MemoryIdempotencyConfig{MaxEntries: 1})
		f := newBoundedFixture(t, 0, idem)
		do := func(key string) <-chan result {
			ch := make(chan result, 1)
			go func() {
				out, err := f.gw.Do(context.WithoutCancel(t.Context()), &gateway.Request{Route: route(gateway.ModeSync),
					Message: envelope.Request{Method: "POST", Path: "/x", IdempotencyKey: key, Body: []byte("ping")}})
				ch <- result{out: out, err: err}
			}()
			return ch
		}
		first := do("k1")
		f.reply(t, <-f.pub.msgs, "pong")
		if r := <-first; r.err != nil {
			t.Fatal(r.err)
		}
		wantStoreFull(t, "a new key", <-do("k2"))
		f.nothingPublished(t)
		if f.store.Len() != 1 {
			t.Fatalf("Len() = %d: the refused request's record was left behind", f.store.Len())
		}
	})
}
