package redisstate_test

import (
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/correlation/redisstate"
)

// A node that watches a record (it streams the request's events) is
// notified through its listener, as a bodiless progress reply, when
// another node stores a progress message or the reply for it; a record
// nobody watches notifies nobody; Watch of an unknown id writes nothing.
func TestWatchNotifies(t *testing.T) {
	for _, d := range deployments[:3] { // plain: PUBLISH, and SPUBLISH on the cluster
		t.Run(d.name, func(t *testing.T) {
			rdb, cfg := newClientOn(t, d)
			store, router := redisstate.NewStore(rdb, cfg), redisstate.NewRouter(rdb, cfg)
			ctx := t.Context()
			got := make(chan envelope.Reply, 16)
			l, err := router.Listen(ctx, "b", func(rep envelope.Reply) { got <- rep })
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()

			unwatched, watched := correlation.NewID(), correlation.NewID()
			for _, id := range []string{unwatched, watched} {
				if err := store.Pending(ctx, id, "", time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			if err := store.Watch(ctx, watched, "b"); err != nil {
				t.Fatal(err)
			}
			unknown := correlation.NewID()
			if err := store.Watch(ctx, unknown, "b"); err != nil {
				t.Fatal(err)
			}
			if _, err := store.Get(ctx, unknown); err == nil {
				t.Fatal("Watch of an unknown id made a record")
			}
			expect := func(what string) {
				t.Helper()
				select {
				case rep := <-got:
					if rep.CorrelationID != watched || !rep.Progress || rep.Body != nil || rep.Status != 0 {
						t.Fatalf("%s: listener got %+v, want a notify for %s", what, rep, watched)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("%s: no notify within 5s", what)
				}
			}
			// The unwatched record first: had it notified, that would
			// arrive before the watched one's.
			if _, err := store.Progress(ctx, unwatched, correlation.Progress{Body: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			if _, err := store.Progress(ctx, watched, correlation.Progress{Body: []byte("1")}); err != nil {
				t.Fatal(err)
			}
			expect("progress")
			if err := store.Complete(ctx, envelope.Reply{CorrelationID: unwatched}); err != nil {
				t.Fatal(err)
			}
			if err := store.Complete(ctx, envelope.Reply{CorrelationID: watched, Body: []byte("done")}); err != nil {
				t.Fatal(err)
			}
			expect("complete")
			if res, err := store.Get(ctx, watched); err != nil || res.State != correlation.StateDone || string(res.Reply.Body) != "done" {
				t.Errorf("watched record after Complete: %+v, %v", res, err)
			}
			select {
			case rep := <-got:
				t.Errorf("unexpected message %+v", rep)
			default:
			}
		})
	}
}
