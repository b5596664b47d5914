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

// hookStore is a MemoryStore that runs a hook in the middle of giveUp:
// right after the 202's record is written (Promise), or right before the
// callback is recorded (SetCallback). The hooks play a reply that comes
// at exactly that moment.
type hookStore struct {
	*correlation.MemoryStore
	afterPromise  func()
	beforeSetCall func()
}

func (s *hookStore) Promise(ctx context.Context, id, principal string, ttl time.Duration) error {
	err := s.MemoryStore.Promise(ctx, id, principal, ttl)
	if s.afterPromise != nil {
		s.afterPromise()
	}
	return err
}

func (s *hookStore) SetCallback(ctx context.Context, id string, cb correlation.Callback) error {
	if s.beforeSetCall != nil {
		s.beforeSetCall()
	}
	return s.MemoryStore.SetCallback(ctx, id, cb)
}

// TestReplyAtTheEndOfTheWaitIsNotCalledBack: a request with a callback
// whose reply comes while its wait ends is answered on its connection or
// called back, never both.
func TestReplyAtTheEndOfTheWaitIsNotCalledBack(t *testing.T) {
	for _, at := range []string{"after the record is written", "before the callback is recorded"} {
		t.Run(at, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
				store := &hookStore{MemoryStore: mem}
				pub := &recorder{msgs: make(chan brokers.Message, 1)}
				gw := gateway.New(gateway.Config{ReplyTo: "replies.test"}, pub, store)
				t.Cleanup(gw.Close)
				rt := route(gateway.ModeAuto)
				rt.CallbackWindow = time.Hour

				replied := false
				hook := func() {
					if replied {
						return
					}
					replied = true
					m := <-pub.msgs
					req, err := envelope.DecodeRequest(m)
					if err != nil {
						t.Errorf("published request does not decode: %v", err)
						return
					}
					if _, err := gw.DispatchReply(context.Background(), envelope.Reply{
						CorrelationID: req.CorrelationID, Status: 200, Body: []byte("just in time"),
					}.Message()); err != nil {
						t.Errorf("DispatchReply: %v", err)
					}
				}
				if at == "after the record is written" {
					store.afterPromise = hook
				} else {
					store.beforeSetCall = hook
				}

				res := make(chan result, 1)
				go func() {
					out, err := gw.Do(t.Context(), &gateway.Request{
						Route:    rt,
						Message:  envelope.Request{Method: "POST", Path: "/x", Body: []byte("ping")},
						Callback: "http://127.0.0.1:1/hook",
					})
					res <- result{out: out, err: err}
				}()
				r := <-res
				if r.err != nil || r.out.Accepted || string(r.out.Reply.Body) != "just in time" {
					t.Fatalf("Do = %+v, %v; want the reply on the connection", r.out, r.err)
				}
				ids, err := mem.ClaimDeliveries(t.Context(), time.Now(), 10, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				if len(ids) != 0 {
					t.Errorf("deliveries queued for a request answered on its connection: %v", ids)
				}
			})
		})
	}
}

// TestProgressKeepsItsOrderAcrossThe202: a progress message held by the
// waiter (P1) is stored before one that comes while the request is being
// answered 202 (P2), though the record exists by then.
func TestProgressKeepsItsOrderAcrossThe202(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
		store := &hookStore{MemoryStore: mem}
		pub := &recorder{msgs: make(chan brokers.Message, 1)}
		gw := gateway.New(gateway.Config{ReplyTo: "replies.test"}, pub, store)
		t.Cleanup(gw.Close)
		rt := route(gateway.ModeAuto)

		ids := make(chan string, 1) // the request's id, for the hook
		progress := func(id, body string) {
			out, err := gw.DispatchReply(context.Background(), envelope.Reply{
				CorrelationID: id, Progress: true, ContentType: "text/plain", Body: []byte(body),
			}.Message())
			if err != nil || out != gateway.ReplyProgress {
				t.Errorf("progress %s: %v, %v", body, out, err)
			}
		}
		store.afterPromise = func() { progress(<-ids, "P2") }

		res := make(chan result, 1)
		go func() {
			out, err := gw.Do(t.Context(), &gateway.Request{
				Route: rt, Message: envelope.Request{Method: "POST", Path: "/x"},
			})
			res <- result{out: out, err: err}
		}()
		req, err := envelope.DecodeRequest(<-pub.msgs)
		if err != nil {
			t.Fatal(err)
		}
		id := req.CorrelationID
		ids <- id
		progress(id, "P1")
		r := <-res
		if r.err != nil || !r.out.Accepted {
			t.Fatalf("Do = %+v, %v; want 202", r.out, r.err)
		}
		got, err := mem.Events(t.Context(), id, 0)
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		for _, p := range got.Progress {
			order = append(order, string(p.Body))
		}
		if len(order) != 2 || order[0] != "P1" || order[1] != "P2" {
			t.Errorf("stored progress = %v, want [P1 P2]", order)
		}
	})
}
