package gateway_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
)

// A second reply for a request answered already is a duplicate, also on a
// sync route whose waiter took the first one directly (nothing stored), and
// also in the outcomes DispatchReply returns.
func TestSecondReplyIsDuplicate(t *testing.T) {
	for _, mode := range []gateway.Mode{gateway.ModeSync, gateway.ModeAuto, gateway.ModeAsync} {
		t.Run(string(mode), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFixture(t)
				res := f.do(t.Context(), route(mode), gateway.Preferences{})
				m := <-f.pub.msgs
				req, _ := envelope.DecodeRequest(m)
				c := make(map[gateway.ReplyOutcome]int)
				for range 2 {
					rep := envelope.Reply{CorrelationID: req.CorrelationID, Body: []byte("x")}
					out, err := f.gw.DispatchReply(t.Context(), rep.Message())
					if err != nil {
						t.Fatal(err)
					}
					c[out]++
				}
				<-res
				if c[gateway.ReplyDuplicate] != 1 || c[gateway.ReplyOrphan] != 0 || c[gateway.ReplyDelivered]+c[gateway.ReplyStored] != 1 {
					t.Errorf("counts %v, want one answered and one duplicate", c)
				}
			})
		})
	}
}

// The memory of answered ids is bounded: after many more answers, an old
// id's second reply is no longer recognised (an orphan again).
func TestDuplicateMemoryIsBounded(t *testing.T) {
	store := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
	gw := gateway.New(gateway.Config{ReplyTo: "r", RecentReplies: 1000}, &recorder{}, store)
	t.Cleanup(gw.Close)
	dispatch := func(id string) gateway.ReplyOutcome {
		t.Helper()
		out, err := gw.DispatchReply(t.Context(), envelope.Reply{CorrelationID: id}.Message())
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// answer stores a reply for id, then forgets the record, so that only
	// the gateway's memory can tell a second reply from an orphan.
	answer := func(id string) {
		t.Helper()
		if err := store.Pending(t.Context(), id, "", time.Hour); err != nil {
			t.Fatal(err)
		}
		if out := dispatch(id); out != gateway.ReplyStored {
			t.Fatalf("first reply %v, want stored", out)
		}
		_ = store.Delete(t.Context(), id)
	}
	first := correlation.NewID()
	answer(first)
	if out := dispatch(first); out != gateway.ReplyDuplicate {
		t.Fatalf("second reply %v, want duplicate", out)
	}
	for range 5000 {
		answer(correlation.NewID())
	}
	if out := dispatch(first); out != gateway.ReplyOrphan {
		t.Errorf("second reply after 5000 others: %v, want orphan (forgotten)", out)
	}
}
