package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/memory"
	"github.com/syncgate/syncgate/brokers/responder"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
	"github.com/syncgate/syncgate/gateway/instrument"
)

// heldService runs a real gateway on the in-memory broker with a
// responder service on "svc" that hands every request to the test (seen)
// and answers it, with the principal and the forwarded principal header it
// saw, once the test sends on release.
func heldService(t *testing.T) (gw *gateway.Gateway, seen <-chan responder.Request, release chan<- struct{}) {
	t.Helper()
	b := memory.New(memory.Config{})
	g := gateway.New(gateway.Config{ReplyTo: "replies", Logger: slog.New(slog.DiscardHandler)}, b,
		correlation.NewMemoryStore(correlation.MemoryStoreConfig{}))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		g.Close()
		_ = b.Close()
	})
	reqs, rel := make(chan responder.Request, 8), make(chan struct{})
	ready := make(chan struct{}, 2)
	isReady := brokers.WithReady(func() { ready <- struct{}{} })
	wg.Go(func() {
		_ = b.Subscribe(ctx, "replies", instrument.ReplyHandler(g.DispatchReply, prometheus.NewRegistry()), brokers.AsInbox(), isReady)
	})
	svc := &responder.Service{Subscriber: b, Publisher: b, Logger: slog.New(slog.DiscardHandler)}
	wg.Go(func() {
		_ = svc.Serve(ctx, "svc", func(ctx context.Context, req responder.Request) (responder.Reply, error) {
			reqs <- req
			select {
			case <-rel:
			case <-ctx.Done():
				return responder.Reply{}, ctx.Err()
			}
			body := fmt.Sprintf("principal=%s forwarded=%s", req.Principal, req.Header["principal"])
			return responder.Reply{ContentType: "text/plain", Body: []byte(body)}, nil
		}, isReady)
	})
	<-ready
	<-ready
	return g, reqs, rel
}

// TestOwnership: a request is its principal's. Another principal, and an
// anonymous caller, get for GET, a long poll and DELETE exactly what an
// unknown id gets; the owner still gets the reply. The service sees the
// authenticated principal, never one a caller sent.
func TestOwnership(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gw, seen, release := heldService(t)
		pay := api.Route{Method: "POST", Path: "/pay", MaxBody: 1024,
			ForwardHeaders: []string{"Principal", "X-Principal"},
			Route:          &gateway.Route{Name: "pay", Destination: "svc", Mode: gateway.ModeAsync, Timeout: time.Minute}}
		anon := api.Route{Method: "POST", Path: "/anon", MaxBody: 1024, Auth: "optional",
			Route: &gateway.Route{Name: "anon", Destination: "svc", Mode: gateway.ModeAsync, Timeout: time.Minute}}
		h := newHandler(t, gw, func(o *api.Options) {
			o.Auth = keysAuth(t)
			o.Routes = []api.Route{pay, anon}
		})
		alice := map[string]string{"Authorization": "Bearer alice-key-1"}
		bob := map[string]string{"Authorization": "Bearer bob-key-2"}

		// Alice's request, with headers that try to pass for a principal.
		rec := serve(h, "POST", "/pay", "x", map[string]string{
			"Authorization": "Bearer alice-key-1", "Principal": "bob", "X-Principal": "bob",
		})
		if rec.Code != http.StatusAccepted {
			t.Fatalf("alice's POST: %d %s", rec.Code, rec.Body)
		}
		id := rec.Header().Get(api.HeaderCorrelationID)
		req := <-seen
		if req.Principal != "alice" || req.Header["principal"] != "bob" || req.Header["x-principal"] != "bob" {
			t.Fatalf("the service saw principal %q, headers %v; want alice, the spoofs as plain HTTP headers", req.Principal, req.Header)
		}

		unknown := correlation.NewID()
		for _, who := range []struct {
			name string
			hdr  map[string]string
		}{{"bob", bob}, {"anonymous", nil}} {
			for _, call := range []struct{ method, query string }{{"GET", ""}, {"GET", "?wait=1s"}, {"DELETE", ""}} {
				start := time.Now()
				got := serve(h, call.method, api.PollPath+id+call.query, "", who.hdr)
				if d := time.Since(start); d != 0 {
					t.Errorf("%s %s%s by %s took %v; an unknown id answers at once", call.method, id, call.query, who.name, d)
				}
				want := serve(h, call.method, api.PollPath+unknown+call.query, "", who.hdr)
				wantProblem(t, got, api.ProblemRequestNotFound)
				sameAnswer(t, got, id, want, unknown)
			}
		}

		// Alice's request is still pending (nobody else cancelled it).
		if rec := serve(h, "GET", api.PollPath+id, "", alice); rec.Code != http.StatusAccepted {
			t.Fatalf("alice's poll: %d %s", rec.Code, rec.Body)
		}
		release <- struct{}{}
		rec = serve(h, "GET", api.PollPath+id+"?wait=10s", "", alice)
		if rec.Code != http.StatusOK || rec.Body.String() != "principal=alice forwarded=bob" {
			t.Fatalf("alice's long poll: %d %s", rec.Code, rec.Body)
		}
		// Done: bob's DELETE is still 404, not the 409 that would tell
		// him the request exists.
		for _, method := range []string{"GET", "DELETE"} {
			wantProblem(t, serve(h, method, api.PollPath+id, "", bob), api.ProblemRequestNotFound)
		}

		// An anonymous request is anybody's, as before auth existed.
		rec = serve(h, "POST", "/anon", "x", nil)
		if rec.Code != http.StatusAccepted {
			t.Fatalf("anonymous POST: %d %s", rec.Code, rec.Body)
		}
		anonID := rec.Header().Get(api.HeaderCorrelationID)
		if req := <-seen; req.Principal != "" {
			t.Errorf("the service saw principal %q for an anonymous request", req.Principal)
		}
		for _, hdr := range []map[string]string{nil, bob} {
			if rec := serve(h, "GET", api.PollPath+anonID, "", hdr); rec.Code != http.StatusAccepted {
				t.Errorf("poll of an anonymous request: %d %s", rec.Code, rec.Body)
			}
		}
		release <- struct{}{}
	})
}

// sameAnswer checks that got (about id) and want (about unknown) are the
// same answer but for the id: status, headers (the per-request ids by name
// only), body.
func sameAnswer(t *testing.T, got *httptest.ResponseRecorder, id string, want *httptest.ResponseRecorder, unknown string) {
	t.Helper()
	if got.Code != want.Code {
		t.Errorf("status %d, an unknown id %d", got.Code, want.Code)
	}
	g, w := strings.ReplaceAll(got.Body.String(), id, "{id}"), strings.ReplaceAll(want.Body.String(), unknown, "{id}")
	if g != w {
		t.Errorf("body\n%s\nan unknown id's\n%s", g, w)
	}
	for k := range got.Header() {
		if _, ok := want.Header()[k]; !ok {
			t.Errorf("header %s, which an unknown id does not get", k)
		}
	}
	for k, v := range want.Header() {
		if k != "X-Request-Id" && k != "Traceparent" && strings.Join(got.Header()[k], ",") != strings.Join(v, ",") {
			t.Errorf("header %s: %v, an unknown id %v", k, got.Header()[k], v)
		}
	}
}

// TestIdempotencyKeyPerPrincipal: the same key and body from two
// principals are two requests (the service sees both); from the same
// principal, one; with another forwarded header, a 422.
func TestIdempotencyKeyPerPrincipal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gw, seen, release := heldService(t)
		pay := api.Route{Method: "POST", Path: "/pay", MaxBody: 1024, ForwardHeaders: []string{"X-Tenant"},
			Route: &gateway.Route{Name: "pay", Destination: "svc", Mode: gateway.ModeAsync, Timeout: time.Minute}}
		h := newHandler(t, gw, func(o *api.Options) {
			o.Auth = keysAuth(t)
			o.Routes = []api.Route{pay}
		})
		post := func(key, tenant string) *httptest.ResponseRecorder {
			return serve(h, "POST", "/pay", "pay 10", map[string]string{
				"Authorization": key, "Idempotency-Key": "k-1", "X-Tenant": tenant,
			})
		}
		a1 := post("Bearer alice-key-1", "t1")
		b1 := post("Bearer bob-key-2", "t1")
		a2 := post("Bearer alice-key-1", "t1")
		for _, rec := range []*httptest.ResponseRecorder{a1, b1, a2} {
			if rec.Code != http.StatusAccepted {
				t.Fatalf("POST: %d %s", rec.Code, rec.Body)
			}
		}
		id := func(rec *httptest.ResponseRecorder) string { return rec.Header().Get(api.HeaderCorrelationID) }
		if id(a1) == id(b1) || id(a2) != id(a1) || a2.Header().Get(api.HeaderIdempotentReplayed) != "true" || b1.Header().Get(api.HeaderIdempotentReplayed) != "" {
			t.Fatalf("ids alice %s, bob %s, alice again %s (replayed %q, bob's %q)", id(a1), id(b1), id(a2),
				a2.Header().Get(api.HeaderIdempotentReplayed), b1.Header().Get(api.HeaderIdempotentReplayed))
		}
		wantProblem(t, post("Bearer alice-key-1", "t2"), api.ProblemKeyMismatch)
		// The service takes one request at a time.
		principals := map[string]int{}
		for range 2 {
			principals[(<-seen).Principal]++
			release <- struct{}{}
		}
		synctest.Wait()
		if len(seen) != 0 || principals["alice"] != 1 || principals["bob"] != 1 {
			t.Fatalf("the service saw %v and %d more; want alice's and bob's once each", principals, len(seen))
		}
	})
}
