package gateway_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
)

// A keyed scatter-gather request whose caller went away mid-wait ends
// all the same: its parts have records linked to it, so their late
// replies settle it, and a retry with the key gets the document (it used
// to time out for the key's whole life).
func TestGatherKeyedClientGoneRetryGetsTheDocument(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGatherFixture(t)
		rt := gatherRoute(gateway.ModeSync, "", "user", "promo")
		keyed := func(ctx context.Context) <-chan result {
			ch := make(chan result, 1)
			go func() {
				req := &gateway.Request{Route: rt, Message: envelope.Request{Method: "POST", Path: "/register", IdempotencyKey: "k-1", Body: []byte("x")}}
				out, err := f.gw.Do(ctx, req)
				ch <- result{out: out, err: err}
			}()
			return ch
		}
		ctx, cancel := context.WithCancel(t.Context())
		first := keyed(ctx)
		parts := f.take(t, 2)
		cancel()
		<-first
		o1 := f.answer(t, parts["svc.user"], 200, "", "")
		o2 := f.answer(t, parts["svc.promo"], 200, "", "")
		if o1 != gateway.ReplyStored || o2 != gateway.ReplyStored {
			t.Errorf("late replies: %v %v, want both stored", o1, o2)
		}
		b := <-keyed(t.Context())
		if b.err != nil || b.out.Reply.Status != 200 {
			t.Fatalf("retry with the key: %v (status %d); want the document (200): the parts replied", b.err, b.out.Reply.Status)
		}
	})
}

// The same for a plain keyed request, the behaviour the gather matches.
func TestPlainKeyedClientGoneRetryGetsTheReply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGatherFixture(t)
		rt := &gateway.Route{Name: "p", Mode: gateway.ModeSync, Timeout: 10 * time.Second, Destination: "svc.p"}
		keyed := func(ctx context.Context) <-chan result {
			ch := make(chan result, 1)
			go func() {
				req := &gateway.Request{Route: rt, Message: envelope.Request{Method: "POST", Path: "/register", IdempotencyKey: "k-1", Body: []byte("x")}}
				out, err := f.gw.Do(ctx, req)
				ch <- result{out: out, err: err}
			}()
			return ch
		}
		ctx, cancel := context.WithCancel(t.Context())
		first := keyed(ctx)
		parts := f.take(t, 1)
		cancel()
		<-first
		f.answer(t, parts["svc.p"], 200, "", "")
		b := <-keyed(t.Context())
		if b.err != nil || b.out.Reply.Status != 200 {
			t.Fatalf("retry with the key: %+v, %v", b.out, b.err)
		}
	})
}

// An async gather all with a part that never replies answers its poll
// after the route's timeout with the 502 document of what came, not 404.
func TestGatherAsyncDeadPartStillGivesTheDocument(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGatherFixture(t)
		r := <-f.do(t.Context(), gatherRoute(gateway.ModeAsync, "", "user", "promo"), nil)
		parts := f.take(t, 2)
		f.answer(t, parts["svc.user"], 201, "application/json", `{"id":7}`)
		time.Sleep(11 * time.Second) // the route's timeout is 10 s
		res, err := f.gw.Result(t.Context(), r.out.ID, "")
		if err != nil || res.State != correlation.StateDone || res.Reply.Status != 502 {
			t.Fatalf("Result after the route's timeout = %v %d, %v; want the 502 document (user done, promo timeout)", res.State, res.Reply.Status, err)
		}
	})
}

// When a part's own timeout decides and nobody polls, the node settles
// the request at that deadline, so its callback is queued.
func TestGatherCallbackWhenAPartTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGatherFixture(t)
		rt := gatherRoute(gateway.ModeAsync, "", "user", "promo")
		rt.Parts[1].Timeout = time.Second
		rt.CallbackWindow = time.Hour
		r := <-f.do(t.Context(), rt, &gateway.Request{Callback: "https://hooks.example/done"})
		parts := f.take(t, 2)
		f.answer(t, parts["svc.user"], 200, "", "")
		time.Sleep(5 * time.Second)
		rec, err := f.store.Get(t.Context(), r.out.ID)
		if err != nil || rec.State != correlation.StateDone || rec.Delivery == nil || rec.Delivery.State != correlation.DeliveryPending {
			t.Fatalf("4 s after promo's own timeout: %v, %v, delivery %+v; want done and the callback queued", rec.State, err, rec.Delivery)
		}
	})
}

// A part's id is not the caller's: it can neither be polled nor
// cancelled on its own (404, as an unknown id).
func TestGatherPartIDsAreNotTheCallers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGatherFixture(t)
		<-f.do(t.Context(), gatherRoute(gateway.ModeAsync, gateway.GatherAny, "user", "promo"), &gateway.Request{Principal: "alice"})
		parts := f.take(t, 2)
		if _, err := f.gw.Result(t.Context(), parts["svc.user"].CorrelationID, "alice"); err == nil {
			t.Errorf("a part id is pollable by its caller")
		}
		if err := f.gw.Cancel(t.Context(), parts["svc.user"].CorrelationID, "alice"); err == nil {
			t.Errorf("a part id is cancellable on its own")
		}
	})
}

type slowPub struct{ msgs chan sent }

func (p *slowPub) Publish(ctx context.Context, dest string, m brokers.Message) error {
	req, _ := envelope.DecodeRequest(m)
	if dest == "svc.promo" {
		<-ctx.Done() // a slow broker ack
		return ctx.Err()
	}
	p.msgs <- sent{dest, req}
	return nil
}

// The caller going away during a slow part's publish does not leave the
// request half published: the published part's reply finds its record,
// and a retry with the key publishes nothing again.
func TestGatherClientGoneMidPublishPublishesWhole(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub := &slowPub{msgs: make(chan sent, 16)}
		store := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
		gw := gateway.New(gateway.Config{ReplyTo: "r"}, pub, store)
		t.Cleanup(gw.Close)
		rt := gatherRoute(gateway.ModeAsync, "", "user", "promo")
		ctx, cancel := context.WithCancel(t.Context())
		ch := make(chan error, 1)
		go func() {
			_, err := gw.Do(ctx, &gateway.Request{Route: rt, Message: envelope.Request{Method: "POST", IdempotencyKey: "k", Body: []byte("x")}})
			ch <- err
		}()
		user := <-pub.msgs
		cancel()
		t.Logf("Do: %v", <-ch)
		out, _ := gw.DispatchReply(t.Context(), envelope.Reply{CorrelationID: user.req.CorrelationID, Status: 200}.Message())
		if out == gateway.ReplyOrphan {
			t.Errorf("the published part's reply is an orphan: its record was deleted")
		}
		go func() {
			_, err := gw.Do(context.Background(), &gateway.Request{Route: rt, Message: envelope.Request{Method: "POST", IdempotencyKey: "k", Body: []byte("x")}})
			ch <- err
		}()
		synctest.Wait()
		select {
		case s := <-pub.msgs:
			t.Errorf("the retry published part %s again (it was published once already)", s.req.Part)
		default:
		}
		<-ch
	})
}
