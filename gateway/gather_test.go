package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
)

// sent is one message a scatter-gather request published.
type sent struct {
	dest string
	req  envelope.Request
}

// scatterPub hands every published message to the test with its
// destination; destinations in refuse are refused.
type scatterPub struct {
	msgs   chan sent
	refuse map[string]bool
}

func (p *scatterPub) Publish(ctx context.Context, dest string, m brokers.Message) error {
	if p.refuse[dest] {
		return errors.New("refused")
	}
	req, err := envelope.DecodeRequest(m)
	if err != nil {
		return err
	}
	select {
	case p.msgs <- sent{dest, req}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type gatherFixture struct {
	gw    *gateway.Gateway
	pub   *scatterPub
	store *correlation.MemoryStore
}

func newGatherFixture(t *testing.T, refuse ...string) *gatherFixture {
	pub := &scatterPub{msgs: make(chan sent, 16), refuse: map[string]bool{}}
	for _, d := range refuse {
		pub.refuse[d] = true
	}
	store := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
	gw := gateway.New(gateway.Config{ReplyTo: "replies.test"}, pub, store)
	t.Cleanup(gw.Close)
	return &gatherFixture{gw: gw, pub: pub, store: store}
}

// take receives n published parts, by destination.
func (f *gatherFixture) take(t *testing.T, n int) map[string]envelope.Request {
	t.Helper()
	got := make(map[string]envelope.Request, n)
	for range n {
		s := <-f.pub.msgs
		got[s.dest] = s.req
	}
	return got
}

// answer replies to req as its service would.
func (f *gatherFixture) answer(t *testing.T, req envelope.Request, status int, contentType, body string) gateway.ReplyOutcome {
	t.Helper()
	out, err := f.gw.DispatchReply(t.Context(), envelope.Reply{
		CorrelationID: req.CorrelationID, Status: status, ContentType: contentType, Body: []byte(body),
		Header: map[string]string{"x-part": req.Part},
	}.Message())
	if err != nil {
		t.Fatalf("DispatchReply: %v", err)
	}
	return out
}

func (f *gatherFixture) do(ctx context.Context, r *gateway.Route, req *gateway.Request) <-chan result {
	ch := make(chan result, 1)
	if req == nil {
		req = &gateway.Request{}
	}
	req.Route = r
	req.Message = envelope.Request{Method: "POST", Path: "/register", ContentType: "application/json", Body: []byte(`{"user":"ann"}`)}
	go func() {
		start := time.Now()
		out, err := f.gw.Do(ctx, req)
		ch <- result{out, err, time.Since(start)}
	}()
	return ch
}

func gatherRoute(mode gateway.Mode, rule gateway.Gather, dests ...string) *gateway.Route {
	r := &gateway.Route{Name: "register", Mode: mode, Wait: 2 * time.Second, Timeout: 10 * time.Second, Gather: rule}
	for _, d := range dests {
		r.Parts = append(r.Parts, gateway.Part{Name: d, Destination: "svc." + d})
	}
	return r
}

// doc decodes a scatter-gather response.
func doc(t *testing.T, rep envelope.Reply) gateway.GatherDoc {
	t.Helper()
	if rep.ContentType != gateway.ContentTypeGather {
		t.Fatalf("content type %q", rep.ContentType)
	}
	var d gateway.GatherDoc
	if err := json.Unmarshal(rep.Body, &d); err != nil {
		t.Fatalf("body %s: %v", rep.Body, err)
	}
	return d
}

func states(d gateway.GatherDoc) map[string]string {
	m := map[string]string{}
	for _, p := range d.Parts {
		m[p.Name] = p.State
	}
	return m
}

func TestGatherAllSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGatherFixture(t)
		res := f.do(t.Context(), gatherRoute(gateway.ModeSync, "", "user", "promo"), nil)
		parts := f.take(t, 2)
		user, promo := parts["svc.user"], parts["svc.promo"]
		if user.CorrelationID == promo.CorrelationID {
			t.Fatal("the parts share a correlation id")
		}
		if user.Part != "user" || promo.Part != "promo" || user.ParentID == "" || user.ParentID != promo.ParentID || user.ReplyTo != "replies.test" {
			t.Fatalf("envelopes: %+v / %+v", user, promo)
		}
		if string(user.Body) != `{"user":"ann"}` || user.ContentType != "application/json" || user.Method != "POST" || user.Path != "/register" {
			t.Errorf("the part does not carry the request: %+v", user)
		}
		time.Sleep(time.Second)
		if out := f.answer(t, promo, 200, "text/plain; charset=utf-8", "10% off"); out != gateway.ReplyDelivered {
			t.Errorf("promo: %v", out)
		}
		time.Sleep(2 * time.Second) // past auto's wait: a sync route holds on
		if out := f.answer(t, user, 201, "application/json", `{ "id": 7 }`); out != gateway.ReplyDelivered {
			t.Errorf("user: %v", out)
		}
		r := <-res
		if r.err != nil || r.out.Accepted || r.out.Reply.Status != 200 || r.out.ID != user.ParentID {
			t.Fatalf("Do = %+v, %v", r.out, r.err)
		}
		if r.elapsed != 3*time.Second {
			t.Errorf("elapsed %v, want 3s: the last part's reply", r.elapsed)
		}
		d := doc(t, r.out.Reply)
		if d.ID != user.ParentID || d.Gather != gateway.GatherAll || len(d.Parts) != 2 || d.Parts[0].Name != "user" || d.Parts[1].Name != "promo" {
			t.Fatalf("doc %+v: want the parts in the route's order", d)
		}
		u, p := d.Parts[0], d.Parts[1]
		if u.State != "done" || u.Status != 201 || string(u.Body) != `{"id":7}` || u.ID != user.CorrelationID || u.Destination != "svc.user" || u.Headers["x-part"] != "user" {
			t.Errorf("user part %+v", u)
		}
		if p.State != "done" || p.Status != 200 || p.BodyText == nil || *p.BodyText != "10% off" || p.Body != nil || p.BodyBase64 != nil {
			t.Errorf("promo part %+v: want its text", p)
		}
		if n := f.gw.Waiting(); n != 0 {
			t.Errorf("Waiting() = %d after the answer", n)
		}
	})
}

func TestGatherAllWaitsForEveryPartAndFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGatherFixture(t)
		res := f.do(t.Context(), gatherRoute(gateway.ModeSync, gateway.GatherAll, "user", "stock"), nil)
		parts := f.take(t, 2)
		f.answer(t, parts["svc.stock"], 409, "application/octet-stream", "\xff\x00")
		select {
		case r := <-res:
			t.Fatalf("answered before every part replied: %+v", r.out)
		default:
		}
		time.Sleep(time.Second)
		f.answer(t, parts["svc.user"], 201, "application/json", `{}`)
		r := <-res
		if r.err != nil || r.out.Reply.Status != gateway.StatusGatherFailed {
			t.Fatalf("Do = %+v, %v; want 502", r.out, r.err)
		}
		d := doc(t, r.out.Reply)
		if s := d.Parts[1]; s.State != "done" || s.Status != 409 || string(s.BodyBase64) != "\xff\x00" {
			t.Errorf("stock part %+v: want its bytes as base64", s)
		}
	})
}

func TestGatherSyncTimeoutAnswersWhatCame(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGatherFixture(t)
		res := f.do(t.Context(), gatherRoute(gateway.ModeSync, "", "user", "promo"), nil)
		parts := f.take(t, 2)
		f.answer(t, parts["svc.user"], 200, "application/json", `{"ok":true}`)
		r := <-res
		if r.err != nil || r.out.Accepted || r.out.Reply.Status != 504 || r.elapsed != 10*time.Second {
			t.Fatalf("Do = %+v, %v after %v; want 504 at the timeout", r.out, r.err, r.elapsed)
		}
		if got := states(doc(t, r.out.Reply)); got["user"] != "done" || got["promo"] != "timeout" {
			t.Errorf("states %v", got)
		}
		if out := f.answer(t, parts["svc.promo"], 200, "", ""); out != gateway.ReplyUnneeded {
			t.Errorf("a late part on a sync route: %v, want unneeded", out)
		}
	})
}

func TestGatherAnyFirstGoodWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGatherFixture(t)
		res := f.do(t.Context(), gatherRoute(gateway.ModeSync, gateway.GatherAny, "eu", "us", "ap"), nil)
		parts := f.take(t, 3)
		f.answer(t, parts["svc.eu"], 503, "", "")
		time.Sleep(time.Second)
		f.answer(t, parts["svc.us"], 200, "application/json", `"us"`)
		r := <-res
		if r.err != nil || r.out.Reply.Status != 200 || r.elapsed != time.Second {
			t.Fatalf("Do = %+v, %v after %v", r.out, r.err, r.elapsed)
		}
		if got := states(doc(t, r.out.Reply)); got["eu"] != "done" || got["us"] != "done" || got["ap"] != "pending" {
			t.Errorf("states %v", got)
		}
		if out := f.answer(t, parts["svc.ap"], 200, "", ""); out != gateway.ReplyUnneeded {
			t.Errorf("the loser's reply: %v, want unneeded (not an orphan: it was asked for)", out)
		}
	})
}

func TestGatherAnyAllFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGatherFixture(t)
		res := f.do(t.Context(), gatherRoute(gateway.ModeSync, gateway.GatherAny, "eu", "us"), nil)
		parts := f.take(t, 2)
		f.answer(t, parts["svc.eu"], 500, "", "")
		f.answer(t, parts["svc.us"], 404, "", "")
		if r := <-res; r.err != nil || r.out.Reply.Status != 502 || r.elapsed != 0 {
			t.Fatalf("Do = %+v, %v after %v", r.out, r.err, r.elapsed)
		}
	})
}

func TestGatherQuorum(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGatherFixture(t)
		r3 := gatherRoute(gateway.ModeSync, gateway.GatherQuorum, "a", "b", "c")
		r3.Quorum = 2
		res := f.do(t.Context(), r3, nil)
		parts := f.take(t, 3)
		f.answer(t, parts["svc.a"], 200, "", "")
		f.answer(t, parts["svc.b"], 500, "", "")
		select {
		case r := <-res:
			t.Fatalf("answered with 1 of 2: %+v", r.out)
		default:
		}
		time.Sleep(time.Second)
		f.answer(t, parts["svc.c"], 204, "", "")
		r := <-res
		if r.err != nil || r.out.Reply.Status != 200 {
			t.Fatalf("Do = %+v, %v", r.out, r.err)
		}
		if d := doc(t, r.out.Reply); d.Quorum != 2 || d.Gather != gateway.GatherQuorum {
			t.Errorf("doc %+v", d)
		}

		// Out of reach: two of three failed, the third is not waited for.
		res = f.do(t.Context(), r3, nil)
		parts = f.take(t, 3)
		f.answer(t, parts["svc.a"], 500, "", "")
		f.answer(t, parts["svc.b"], 502, "", "")
		if r := <-res; r.err != nil || r.out.Reply.Status != 502 || r.elapsed != 0 {
			t.Fatalf("Do = %+v, %v after %v; want 502 at once", r.out, r.err, r.elapsed)
		}
	})
}

func TestGatherPartTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGatherFixture(t)
		r := gatherRoute(gateway.ModeSync, "", "user", "promo")
		r.Parts[1].Timeout = time.Second
		res := f.do(t.Context(), r, nil)
		parts := f.take(t, 2)
		if d, p := parts["svc.user"].Deadline, parts["svc.promo"].Deadline; d.Sub(p) != 9*time.Second {
			t.Errorf("deadlines %v and %v: the part's own budget is 1 s", d, p)
		}
		f.answer(t, parts["svc.user"], 200, "", "")
		got := <-res
		if got.err != nil || got.out.Reply.Status != 502 || got.elapsed != time.Second {
			t.Fatalf("Do = %+v, %v after %v; want 502 at the part's timeout", got.out, got.err, got.elapsed)
		}
		if s := states(doc(t, got.out.Reply)); s["promo"] != "timeout" {
			t.Errorf("states %v", s)
		}
	})
}

// An auto route answers 202 at its wait; the parts that come later
// complete the request for its polls, each announced as a progress
// message, and the last one stores the document.
func TestGatherAutoThenPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGatherFixture(t)
		res := f.do(t.Context(), gatherRoute(gateway.ModeAuto, "", "user", "promo", "stock"), nil)
		parts := f.take(t, 3)
		f.answer(t, parts["svc.user"], 201, "application/json", `{"id":7}`)
		r := <-res
		if r.err != nil || !r.out.Accepted || r.elapsed != 2*time.Second {
			t.Fatalf("Do = %+v, %v after %v; want 202 at the wait", r.out, r.err, r.elapsed)
		}
		id := r.out.ID
		got, err := f.gw.Result(t.Context(), id, "")
		if err != nil || got.State != correlation.StatePending {
			t.Fatalf("Result = %+v, %v", got, err)
		}
		if out := f.answer(t, parts["svc.promo"], 200, "application/json", `{"code":"X"}`); out != gateway.ReplyStored {
			t.Fatalf("promo after the 202: %v, want stored", out)
		}
		ev, err := f.gw.Events(t.Context(), id, "", 0, time.Second)
		if err != nil || ev.State != correlation.StatePending || len(ev.Progress) != 1 {
			t.Fatalf("Events = %+v, %v; want one progress message", ev, err)
		}
		var pd gateway.PartDoc
		if err := json.Unmarshal(ev.Progress[0].Body, &pd); err != nil || pd.Name != "promo" || pd.Status != 200 || string(pd.Body) != `{"code":"X"}` {
			t.Errorf("progress %s: %v", ev.Progress[0].Body, err)
		}
		wait := make(chan correlation.Result, 1)
		go func() {
			res, _ := f.gw.Await(t.Context(), id, "", 30*time.Second)
			wait <- res
		}()
		synctest.Wait()
		f.answer(t, parts["svc.stock"], 200, "", "")
		done := <-wait
		if done.State != correlation.StateDone || done.Reply.Status != 200 {
			t.Fatalf("Await = %+v", done)
		}
		if s := states(doc(t, done.Reply)); s["user"] != "done" || s["promo"] != "done" || s["stock"] != "done" {
			t.Errorf("states %v", s)
		}
		// The document is stored: it outlives the parts' deadlines.
		time.Sleep(20 * time.Second)
		if again, err := f.gw.Result(t.Context(), id, ""); err != nil || again.State != correlation.StateDone || string(again.Reply.Body) != string(done.Reply.Body) {
			t.Fatalf("Result later = %+v, %v", again, err)
		}
		if n := f.gw.PartCounts()[gateway.PartKey{Route: "register", Part: "stock", Outcome: "ok"}]; n != 1 {
			t.Errorf("PartCounts stock ok = %d", n)
		}
	})
}

func TestGatherAsyncAndCallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGatherFixture(t)
		rt := gatherRoute(gateway.ModeAsync, "", "user", "promo")
		rt.CallbackWindow = time.Hour
		res := f.do(t.Context(), rt, &gateway.Request{Callback: "https://hooks.example/done"})
		r := <-res
		if r.err != nil || !r.out.Accepted {
			t.Fatalf("Do = %+v, %v", r.out, r.err)
		}
		parts := f.take(t, 2)
		f.answer(t, parts["svc.user"], 200, "", "")
		rec, _ := f.store.Get(t.Context(), r.out.ID)
		if rec.Delivery == nil || rec.Delivery.State != correlation.DeliveryWaiting {
			t.Fatalf("delivery %+v: want waiting for the last part", rec.Delivery)
		}
		f.answer(t, parts["svc.promo"], 200, "", "")
		rec, _ = f.store.Get(t.Context(), r.out.ID)
		if rec.State != correlation.StateDone || rec.Delivery == nil || rec.Delivery.State != correlation.DeliveryPending {
			t.Fatalf("record %v, delivery %+v: want done and the callback queued", rec.State, rec.Delivery)
		}
	})
}

func TestGatherCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGatherFixture(t)
		res := f.do(t.Context(), gatherRoute(gateway.ModeAsync, "", "user", "promo"), nil)
		r := <-res
		parts := f.take(t, 2)
		if err := f.gw.Cancel(t.Context(), r.out.ID, ""); err != nil {
			t.Fatal(err)
		}
		if out := f.answer(t, parts["svc.user"], 200, "", ""); out != gateway.ReplyCancelled {
			t.Errorf("a part's reply after the cancel: %v", out)
		}
		if res, err := f.gw.Result(t.Context(), r.out.ID, ""); err != nil || res.State != correlation.StateCancelled {
			t.Errorf("Result = %v, %v; want cancelled", res.State, err)
		}
		for _, p := range parts {
			if res, _ := f.store.Get(t.Context(), p.CorrelationID); res.State != correlation.StateCancelled {
				t.Errorf("part %s: %v, want cancelled with its parent", p.Part, res.State)
			}
		}
	})
}

func TestGatherPartRefusedByTheBroker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGatherFixture(t, "svc.promo")
		res := f.do(t.Context(), gatherRoute(gateway.ModeSync, gateway.GatherAny, "user", "promo"), nil)
		parts := f.take(t, 1)
		f.answer(t, parts["svc.user"], 200, "", "")
		r := <-res
		if r.err != nil || r.out.Reply.Status != 200 {
			t.Fatalf("Do = %+v, %v", r.out, r.err)
		}
		d := doc(t, r.out.Reply)
		if p := d.Parts[1]; p.State != "failed" || p.Status != 503 || p.Error == "" {
			t.Errorf("refused part %+v", p)
		}

		// Every part refused: the request fails as a plain one would.
		f = newGatherFixture(t, "svc.user", "svc.promo")
		r = <-f.do(t.Context(), gatherRoute(gateway.ModeAuto, "", "user", "promo"), nil)
		if !errors.Is(r.err, gateway.ErrUnavailable) {
			t.Fatalf("Do = %+v, %v; want ErrUnavailable", r.out, r.err)
		}
		if n := f.store.Len(); n != 0 {
			t.Errorf("%d records left behind", n)
		}
	})
}

// A refused part of an async request is recorded as failed, so that the
// request completes without waiting for it.
func TestGatherAsyncPartRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGatherFixture(t, "svc.promo")
		r := <-f.do(t.Context(), gatherRoute(gateway.ModeAsync, "", "user", "promo"), nil)
		if r.err != nil || !r.out.Accepted {
			t.Fatalf("Do = %+v, %v", r.out, r.err)
		}
		parts := f.take(t, 1)
		f.answer(t, parts["svc.user"], 200, "", "")
		res, err := f.gw.Result(t.Context(), r.out.ID, "")
		if err != nil || res.State != correlation.StateDone || res.Reply.Status != 502 {
			t.Fatalf("Result = %+v, %v; want 502 done", res, err)
		}
		if s := states(doc(t, res.Reply)); s["promo"] != "failed" {
			t.Errorf("states %v", s)
		}
	})
}

func TestGatherIdempotencyKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGatherFixture(t)
		rt := gatherRoute(gateway.ModeSync, "", "user", "promo")
		keyed := func() <-chan result {
			req := &gateway.Request{}
			ch := make(chan result, 1)
			go func() {
				req.Route = rt
				req.Message = envelope.Request{Method: "POST", Path: "/register", IdempotencyKey: "k-1", Body: []byte("x")}
				out, err := f.gw.Do(t.Context(), req)
				ch <- result{out: out, err: err}
			}()
			return ch
		}
		first := keyed()
		parts := f.take(t, 2)
		f.answer(t, parts["svc.user"], 200, "", "")
		f.answer(t, parts["svc.promo"], 200, "", "")
		a := <-first
		b := <-keyed()
		if a.err != nil || b.err != nil || !b.out.Attached || b.out.ID != a.out.ID || string(b.out.Reply.Body) != string(a.out.Reply.Body) {
			t.Fatalf("first %+v %v, retry %+v %v", a.out, a.err, b.out, b.err)
		}
		select {
		case s := <-f.pub.msgs:
			t.Fatalf("the retry published %+v", s)
		default:
		}
	})
}

// Cluster mode: node a answers 202, and the part that decides the gather
// is consumed by node b, which has run no scatter-gather request itself.
// b stores it, finds its parent, and stores the document, so the callback
// is queued without anybody polling; a node that does not know routes
// scatter (Config.Gathers unset, and none run) leaves it to the next poll.
func TestGatherClusterOtherNodeDecides(t *testing.T) {
	for _, gathers := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			results := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
			mr := correlation.NewMemoryRouter(results)
			node := func(name string) (*gateway.Gateway, *scatterPub) {
				pub := &scatterPub{msgs: make(chan sent, 16)}
				gw := gateway.New(gateway.Config{ReplyTo: "syncgate.reply." + name, Gathers: gathers,
					Cluster: &gateway.Cluster{Node: name, Router: mr}}, pub, results)
				t.Cleanup(gw.Close)
				l, err := mr.Listen(context.Background(), name, func(rep envelope.Reply) { gw.AcceptForwarded(context.Background(), rep) })
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = l.Close() })
				return gw, pub
			}
			a, pubA := node("a")
			b, _ := node("b")
			f := &gatherFixture{gw: a, pub: pubA, store: results}
			rt := gatherRoute(gateway.ModeAuto, "", "user", "promo")
			rt.CallbackWindow = time.Hour
			res := f.do(t.Context(), rt, &gateway.Request{Callback: "https://hooks.example/done"})
			parts := f.take(t, 2)
			f.answer(t, parts["svc.user"], 200, "", "")
			r := <-res
			if r.err != nil || !r.out.Accepted {
				t.Fatalf("Do = %+v, %v", r.out, r.err)
			}
			out, err := b.DispatchReply(t.Context(), envelope.Reply{CorrelationID: parts["svc.promo"].CorrelationID, Status: 200}.Message())
			// Stored by b, then forwarded to a, which claimed it and
			// finds it stored already.
			if err != nil || (out != gateway.ReplyStored && out != gateway.ReplyForwarded) {
				t.Fatalf("b: %v, %v; want stored (and forwarded)", out, err)
			}
			rec, err := results.Get(t.Context(), r.out.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !gathers {
				if rec.State != correlation.StatePending {
					t.Fatalf("without Gathers: %v, want pending until a read", rec.State)
				}
				if got, _ := b.Result(t.Context(), r.out.ID, ""); got.State != correlation.StateDone || got.Reply.Status != 200 {
					t.Fatalf("a poll on b: %+v", got)
				}
				return
			}
			if rec.State != correlation.StateDone || rec.Reply.Status != 200 || rec.Delivery == nil || rec.Delivery.State != correlation.DeliveryPending {
				t.Fatalf("record %v %d, delivery %+v: want done by b and the callback queued", rec.State, rec.Reply.Status, rec.Delivery)
			}
		})
	}
}

// The loser of a gather any, consumed by another node, is forwarded to
// the node that ran the request (its claim lives on), which counts it
// unneeded: no node calls it an orphan.
func TestGatherClusterUnneededIsNoOrphan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		results := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
		mr := correlation.NewMemoryRouter(results)
		var gws []*gateway.Gateway
		var pubs []*scatterPub
		for _, name := range []string{"a", "b"} {
			pub := &scatterPub{msgs: make(chan sent, 16)}
			gw := gateway.New(gateway.Config{ReplyTo: "syncgate.reply." + name, Gathers: true,
				Cluster: &gateway.Cluster{Node: name, Router: mr}}, pub, results)
			t.Cleanup(gw.Close)
			l, err := mr.Listen(context.Background(), name, func(rep envelope.Reply) { gw.AcceptForwarded(context.Background(), rep) })
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = l.Close() })
			gws, pubs = append(gws, gw), append(pubs, pub)
		}
		f := &gatherFixture{gw: gws[0], pub: pubs[0], store: results}
		res := f.do(t.Context(), gatherRoute(gateway.ModeSync, gateway.GatherAny, "eu", "us"), nil)
		parts := f.take(t, 2)
		f.answer(t, parts["svc.eu"], 200, "", "")
		if r := <-res; r.err != nil || r.out.Reply.Status != 200 {
			t.Fatalf("Do = %+v, %v", r.out, r.err)
		}
		out, err := gws[1].DispatchReply(t.Context(), envelope.Reply{CorrelationID: parts["svc.us"].CorrelationID}.Message())
		if err != nil || out != gateway.ReplyForwarded {
			t.Fatalf("b: %v, %v; want forwarded to a", out, err)
		}
		synctest.Wait()
		if n := gws[0].ForwardCounts()[gateway.ReplyUnneeded]; n != 1 {
			t.Errorf("a counted %d unneeded forwards, want 1 (%v)", n, gws[0].ForwardCounts())
		}
	})
}

// An async scatter-gather request the store has no room for is refused
// before anything is published, and leaves no record behind: neither the
// parent's nor those of the parts written before the store ran full.
func TestGatherAsyncStoreFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub := &scatterPub{msgs: make(chan sent, 16)}
		store := correlation.NewMemoryStore(correlation.MemoryStoreConfig{MaxEntries: 2})
		gw := gateway.New(gateway.Config{ReplyTo: "replies.test"}, pub, store)
		t.Cleanup(gw.Close)
		f := &gatherFixture{gw: gw, pub: pub, store: store}
		r := <-f.do(t.Context(), gatherRoute(gateway.ModeAsync, "", "user", "promo"), nil)
		if !errors.Is(r.err, gateway.ErrStoreFull) {
			t.Fatalf("Do = %+v, %v; want ErrStoreFull", r.out, r.err)
		}
		if n := store.Len(); n != 0 {
			t.Errorf("%d records left behind", n)
		}
		select {
		case s := <-pub.msgs:
			t.Fatalf("published %+v", s)
		default:
		}
	})
}
