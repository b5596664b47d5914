package gateway_test

import (
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/gateway"
)

func keyed(rt *gateway.Route, key, body string) *gateway.Request {
	return &gateway.Request{Route: rt, Message: envelope.Request{
		Method: "POST", Path: "/pay", IdempotencyKey: key, Body: []byte(body),
	}}
}

func TestIdempotencyConcurrentRequestsPublishOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		rt := route(gateway.ModeSync)
		const n = 50
		var wg sync.WaitGroup
		outs := make([]gateway.Outcome, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { outs[i], errs[i] = f.gw.Do(t.Context(), keyed(rt, "k1", "pay 10")) })
		}
		m := <-f.pub.msgs
		synctest.Wait() // all 50 are waiting now
		if extra := len(f.pub.msgs); extra != 0 {
			t.Fatalf("%d more messages published for one key", extra)
		}
		if got := m.Headers[envelope.IdempotencyKey]; got != "k1" {
			t.Errorf("idempotency-key header = %q", got)
		}
		f.reply(t, m, "paid")
		wg.Wait()
		attached := 0
		for i := range n {
			if errs[i] != nil || string(outs[i].Reply.Body) != "paid" || outs[i].Reply.Status != 201 || outs[i].ID != outs[0].ID {
				t.Fatalf("answer %d = %+v, %v", i, outs[i], errs[i])
			}
			if outs[i].Attached {
				attached++
			}
		}
		if attached != n-1 {
			t.Errorf("%d answers attached, want %d", attached, n-1)
		}
		// After completion the reply is replayed, still without publishing.
		out, err := f.gw.Do(t.Context(), keyed(rt, "k1", "pay 10"))
		if err != nil || string(out.Reply.Body) != "paid" || out.ID != outs[0].ID {
			t.Fatalf("replay = %+v, %v", out, err)
		}
		if len(f.pub.msgs) != 0 || f.gw.Waiting() != 0 {
			t.Errorf("replay published %d, %d waiting", len(f.pub.msgs), f.gw.Waiting())
		}
	})
}

func TestIdempotencyMismatchAndScope(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		rt := route(gateway.ModeAsync)
		first, err := f.gw.Do(t.Context(), keyed(rt, "k", "a"))
		if err != nil || !first.Accepted {
			t.Fatalf("first = %+v, %v", first, err)
		}
		<-f.pub.msgs
		// Same key on an async answer: the same Location (id).
		again, err := f.gw.Do(t.Context(), keyed(rt, "k", "a"))
		if err != nil || !again.Accepted || again.ID != first.ID {
			t.Fatalf("repeat = %+v, %v; want 202 for %s", again, err, first.ID)
		}
		if _, err := f.gw.Do(t.Context(), keyed(rt, "k", "b")); !errors.Is(err, gateway.ErrKeyMismatch) {
			t.Errorf("changed payload: %v, want ErrKeyMismatch", err)
		}
		// Keys are scoped per route: another route runs its own request.
		other := route(gateway.ModeAsync)
		other.Name = "other"
		out, err := f.gw.Do(t.Context(), keyed(other, "k", "b"))
		if err != nil || out.ID == first.ID {
			t.Fatalf("other route = %+v, %v", out, err)
		}
		<-f.pub.msgs
	})
}

func TestIdempotencyAutoRouteRetryAfter202(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		rt := route(gateway.ModeAuto)
		first, err := f.gw.Do(t.Context(), keyed(rt, "k", "x")) // 202 after the 2 s wait
		if err != nil || !first.Accepted {
			t.Fatalf("first = %+v, %v", first, err)
		}
		m := <-f.pub.msgs
		retry := make(chan result, 1)
		go func() {
			start := time.Now()
			out, err := f.gw.Do(t.Context(), keyed(rt, "k", "x"))
			retry <- result{out, err, time.Since(start)}
		}()
		time.Sleep(time.Second) // the service answers 1 s into the retry's wait
		f.reply(t, m, "done")
		r := <-retry
		if r.err != nil || string(r.out.Reply.Body) != "done" || r.elapsed != time.Second {
			t.Fatalf("retry = %+v, %v after %v; want the reply after 1s", r.out, r.err, r.elapsed)
		}
	})
}

func TestIdempotencyRequiredKey(t *testing.T) {
	f := newFixture(t)
	rt := route(gateway.ModeSync)
	rt.RequireKey = true
	if _, err := f.gw.Do(t.Context(), &gateway.Request{Route: rt}); !errors.Is(err, gateway.ErrKeyRequired) {
		t.Fatalf("err = %v, want ErrKeyRequired", err)
	}
	if len(f.pub.msgs) != 0 {
		t.Error("published without a key")
	}
}

func TestIdempotencyKeyReleasedOnPublishFailure(t *testing.T) {
	f := newFixture(t)
	rt := route(gateway.ModeAsync)
	f.pub.err = errors.New("down")
	if _, err := f.gw.Do(t.Context(), keyed(rt, "k", "x")); !errors.Is(err, gateway.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	f.pub.err = nil
	out, err := f.gw.Do(t.Context(), keyed(rt, "k", "x"))
	if err != nil || out.Attached {
		t.Fatalf("retry after a failed publish = %+v, %v; want a fresh request", out, err)
	}
	if len(f.pub.msgs) != 1 {
		t.Errorf("%d published, want 1", len(f.pub.msgs))
	}
}

func TestIdempotencyConflictWhenTheResultIsGone(t *testing.T) {
	f := newFixture(t)
	first, err := f.gw.Do(t.Context(), keyed(route(gateway.ModeAsync), "k", "x"))
	if err != nil {
		t.Fatal(err)
	}
	<-f.pub.msgs
	_ = f.store.Delete(t.Context(), first.ID) // expired
	if _, err := f.gw.Do(t.Context(), keyed(route(gateway.ModeSync), "k", "x")); !errors.Is(err, gateway.ErrKeyConflict) {
		t.Fatalf("err = %v, want ErrKeyConflict", err)
	}
	if len(f.pub.msgs) != 0 {
		t.Error("a bound key must never publish again")
	}
}
