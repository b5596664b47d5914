package clustertest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/testenv"
)

// TestIdempotencyKeyAcrossNodes: a retry with the same Idempotency-Key on
// another node attaches to the request in flight on the first (nothing is
// published twice) and gets its reply; the same key with another body is
// refused on a third node; after the reply, a retry anywhere replays it.
func TestIdempotencyKeyAcrossNodes(t *testing.T) {
	c := newCluster(t, nodeIDs...)
	svc := startService(t, c, holdAll)
	a, b, cn := c.Node("a"), c.Node("b"), c.Node("c")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	const key = "order-42"
	type result struct {
		resp response
		err  error
	}
	first, retry := make(chan result, 1), make(chan result, 1)
	go func() {
		resp, err := c.post(ctx, a, routeEcho, body(0), "Idempotency-Key", key)
		first <- result{resp, err}
	}()
	req := svc.Held(1, 30*time.Second)[0]
	go func() {
		resp, err := c.post(ctx, b, routeEcho, body(0), "Idempotency-Key", key)
		retry <- result{resp, err}
	}()
	// The retry waits on b (the scrape itself is the other request in flight).
	testenv.Eventually(t, 30*time.Second, "the retry waits on node b", func() bool {
		return c.scrape(b).value("syncgate_http_in_flight_requests") >= 2
	})
	if resp, err := c.post(ctx, cn, routeEcho, body(1), "Idempotency-Key", key); err != nil || resp.status != http.StatusUnprocessableEntity {
		t.Errorf("the key with another body on node c: %d %v, want 422", resp.status, err)
	}

	// Answered to c: c stores it (the keyed request is pollable) and
	// forwards it to a; b's retry finds it in the store.
	if err := svc.Answer(ctx, req, "c"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		name     string
		ch       chan result
		replayed string
	}{{"the first request on node a", first, ""}, {"the retry on node b", retry, "true"}} {
		res := <-r.ch
		switch {
		case res.err != nil:
			t.Errorf("%s: %v", r.name, res.err)
		case res.resp.status != http.StatusOK || res.resp.body != body(0) || res.resp.id != req.CorrelationID:
			t.Errorf("%s: %d %q (id %s), want 200 %q (id %s)", r.name, res.resp.status, res.resp.body, res.resp.id, body(0), req.CorrelationID)
		case res.resp.header.Get("Idempotent-Replayed") != r.replayed:
			t.Errorf("%s: Idempotent-Replayed %q, want %q", r.name, res.resp.header.Get("Idempotent-Replayed"), r.replayed)
		}
	}
	for _, n := range []*node{a, b, cn} {
		resp, err := c.post(ctx, n, routeEcho, body(0), "Idempotency-Key", key)
		if err != nil || resp.status != http.StatusOK || resp.body != body(0) || resp.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("a retry after the reply on node %s: %d %q replayed=%q %v, want the reply replayed",
				n.id, resp.status, resp.body, resp.header.Get("Idempotent-Replayed"), err)
		}
	}
	if distinct, repeated := svc.Seen(); distinct != 1 || repeated != 0 {
		t.Errorf("the service saw %d requests (%d more than once), want one: retries publish nothing", distinct, repeated)
	}
}
