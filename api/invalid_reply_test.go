package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/brokers/memory"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
	"github.com/syncgate/syncgate/gateway/instrument"
)

// newBrokerGateway runs a real gateway on the in-memory broker, its reply
// consumer, and a service on "svc" that answers every request with the
// reply headers reply returns (the correlation id is added).
func newBrokerGateway(t *testing.T, reply func(req envelope.Request) map[string]string) *gateway.Gateway {
	t.Helper()
	b := memory.New(memory.Config{})
	gw := gateway.New(gateway.Config{ReplyTo: "replies", Logger: slog.New(slog.DiscardHandler)}, b,
		correlation.NewMemoryStore(correlation.MemoryStoreConfig{}))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		gw.Close()
		_ = b.Close()
	})
	ready := make(chan struct{}, 2)
	isReady := brokers.WithReady(func() { ready <- struct{}{} })
	wg.Go(func() {
		_ = b.Subscribe(ctx, "replies", instrument.ReplyHandler(gw.DispatchReply, prometheus.NewRegistry()), brokers.AsInbox(), isReady)
	})
	wg.Go(func() {
		_ = b.Subscribe(ctx, "svc", func(ctx context.Context, m brokers.Message) error {
			req, err := envelope.DecodeRequest(m)
			if err != nil {
				t.Errorf("request does not decode: %v", err)
				return nil
			}
			h := reply(req)
			h[envelope.CorrelationID] = req.CorrelationID
			return b.Publish(ctx, req.ReplyTo, brokers.Message{Key: req.CorrelationID, Headers: h, Body: []byte("{}")})
		}, isReady)
	})
	<-ready
	<-ready
	return gw
}

// A service reply with a status that is no HTTP status answers the caller
// at once with a 502 invalid-reply problem, and the poll of a request
// accepted with 202 gets the same.
func TestInvalidReplyIs502Problem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gw := newBrokerGateway(t, func(envelope.Request) map[string]string {
			return map[string]string{envelope.Status: "abc"}
		})
		rt := api.Route{Method: "POST", Path: "/r", MaxBody: 1024,
			Route: &gateway.Route{Name: "r", Destination: "svc", Mode: gateway.ModeAuto, Wait: 5 * time.Second, Timeout: 10 * time.Second}}
		h := newHandler(t, gw, func(o *api.Options) { o.Routes = []api.Route{rt} })

		start := time.Now()
		rec := serve(h, "POST", "/r", "x", nil)
		if d := time.Since(start); d >= time.Second {
			t.Errorf("answered after %v, want at once", d)
		}
		p := wantProblem(t, rec, api.ProblemInvalidReply)
		if p.CorrelationID == "" || p.CorrelationID != rec.Header().Get(api.HeaderCorrelationID) || p.Detail == "" {
			t.Errorf("problem %+v", p)
		}

		rec = serve(h, "POST", "/r", "x", map[string]string{"Prefer": "respond-async"})
		if rec.Code != 202 {
			t.Fatalf("respond-async: %d %s", rec.Code, rec.Body)
		}
		var pending struct{ ID, Location string }
		_ = json.Unmarshal(rec.Body.Bytes(), &pending)
		p = wantProblem(t, serve(h, "GET", pending.Location+"?wait=5s", "", nil), api.ProblemInvalidReply)
		if p.CorrelationID != pending.ID {
			t.Errorf("poll problem %+v, want correlation id %s", p, pending.ID)
		}
	})
}

// The catalogue's failure types are the ones envelope.FailureReply writes.
func TestFailureRepliesMatchCatalogue(t *testing.T) {
	for _, pt := range []api.ProblemType{api.ProblemInvalidReply, api.ProblemDeadLettered} {
		rep := envelope.FailureReply(someID, pt.Slug, "d")
		var p api.Problem
		if err := json.Unmarshal(rep.Body, &p); err != nil {
			t.Fatal(err)
		}
		if p.Type != pt.URI() || p.Title != pt.Title || p.Status != pt.Status || rep.StatusCode() != pt.Status {
			t.Errorf("FailureReply(%s) = %d %+v, catalogue says %+v", pt.Slug, rep.StatusCode(), p, pt)
		}
	}
}
