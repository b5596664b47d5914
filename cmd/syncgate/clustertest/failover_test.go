package clustertest

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
)

func holdAll(envelope.Request) decision { return decision{hold: true} }

// TestPollAnotherNodeWhileOwnerIsDown: two requests accepted (202) by node
// a; a is killed; the service answers one to b's reply topic and one to
// c's. Both are pollable on c (and on b), with their bodies.
func TestPollAnotherNodeWhileOwnerIsDown(t *testing.T) {
	c := newCluster(t, nodeIDs...)
	svc := startService(t, c.kafka, holdAll)
	a, b, cn := c.Node("a"), c.Node("b"), c.Node("c")

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	sent := make(map[string]string) // correlation id → body
	for i := range 2 {
		resp, err := c.post(ctx, a, routeEcho, body(i), "Prefer", "respond-async")
		if err != nil {
			t.Fatal(err)
		}
		if resp.status != http.StatusAccepted || resp.header.Get("Location") != "/v1/requests/"+resp.id {
			t.Fatalf("request %d on node a: %d, Location %q; want 202 with the poll location", i, resp.status, resp.header.Get("Location"))
		}
		sent[resp.id] = body(i)
	}
	held := svc.Held(2, 30*time.Second)
	for _, req := range held {
		if sent[req.CorrelationID] != string(req.Body) || req.ReplyTo != replyAddr("a") {
			t.Fatalf("the service got %s (reply to %s, body %q), which node a did not send", req.CorrelationID, req.ReplyTo, req.Body)
		}
		// Pending everywhere: the record is in Redis, not in a's memory.
		if status, _, err := c.get(cn, "/v1/requests/"+req.CorrelationID); err != nil || status != http.StatusAccepted {
			t.Fatalf("poll %s on node c before the reply: %d %v, want 202", req.CorrelationID, status, err)
		}
	}

	a.proc.Kill()
	for i, req := range held {
		if err := svc.Answer(ctx, req, []string{"b", "c"}[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i, req := range held {
		for _, n := range []*node{cn, b} {
			status, got := c.poll(n, req.CorrelationID)
			if status != http.StatusOK || got != string(req.Body) {
				t.Errorf("poll %s (answered to %s) on node %s: %d %q, want 200 %q",
					req.CorrelationID, []string{"b", "c"}[i], n.id, status, got, req.Body)
			}
		}
	}
	k := c.counts(b, cn)
	if k.replies["stored"] != 2 || sum(k.replies) != 2 {
		t.Errorf("nodes b and c consumed %v, want both replies stored", k.replies)
	}
}

// TestKillNodeWithRequestsInFlight: requests wait on node a (auto route)
// when a is killed. Its clients lose their connections, but the service
// still holds the requests; it answers them to b's and c's reply topics,
// and every one of them is pollable, with its body, on b and on c. Those it
// answers to a's own topic while a is down are pollable once a is back.
func TestKillNodeWithRequestsInFlight(t *testing.T) {
	const inFlight = 24
	c := newCluster(t, nodeIDs...)
	svc := startService(t, c.kafka, holdAll)
	a, b, cn := c.Node("a"), c.Node("b"), c.Node("c")

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	sent := make(map[string]bool)
	errs := make(chan error, inFlight)
	var wg sync.WaitGroup
	for i := range inFlight {
		sent[body(i)] = true
		wg.Go(func() {
			resp, err := c.post(ctx, a, routeEcho, body(i))
			if err == nil {
				t.Errorf("request %d on node a answered %d %q, although a was killed while it waited", i, resp.status, resp.body)
			}
			errs <- err
		})
	}
	held := svc.Held(inFlight, 30*time.Second)
	for _, req := range held {
		if !sent[string(req.Body)] || req.ReplyTo != replyAddr("a") {
			t.Fatalf("the service got %s (reply to %s, body %q), which node a did not send", req.CorrelationID, req.ReplyTo, req.Body)
		}
	}
	if w := c.scrape(a).value("syncgate_waiting_requests"); w != inFlight {
		t.Fatalf("node a has %.0f requests waiting, want %d", w, inFlight)
	}

	a.proc.Kill()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !isConnectionLost(err) {
			t.Errorf("a client of node a: %v, want its connection lost", err)
		}
	}
	// A third of the replies go to a's own topic while a is down, the
	// rest to b's and c's.
	answeredTo := make(map[string]string)
	var toA, toOthers []envelope.Request
	for i, req := range held {
		to := nodeIDs[i%3]
		if err := svc.Answer(ctx, req, to); err != nil {
			t.Fatal(err)
		}
		answeredTo[req.CorrelationID] = to
		if to == "a" {
			toA = append(toA, req)
		} else {
			toOthers = append(toOthers, req)
		}
	}
	for _, req := range toOthers {
		for _, n := range []*node{b, cn} {
			status, got := c.poll(n, req.CorrelationID)
			if status != http.StatusOK || got != string(req.Body) {
				t.Errorf("poll %s (answered to %s) on node %s: %d %q, want 200 %q",
					req.CorrelationID, answeredTo[req.CorrelationID], n.id, status, got, req.Body)
			}
		}
	}
	k := c.counts(b, cn)
	if k.replies["stored"] != float64(len(toOthers)) || sum(k.replies) != float64(len(toOthers)) {
		t.Errorf("nodes b and c consumed %v, want all %d replies sent to them stored (their node is gone)", k.replies, len(toOthers))
	}
	if sum(k.clusterErrors) != 0 {
		t.Errorf("cluster errors on b and c: %v", k.clusterErrors)
	}
	for _, req := range toA {
		if status, _, err := c.get(b, "/v1/requests/"+req.CorrelationID); err != nil || status != http.StatusAccepted {
			t.Errorf("poll %s (answered to the dead node a) on node b: %d %v, want 202 pending", req.CorrelationID, status, err)
		}
	}

	// a comes back under its id once its lease lapsed (2s), consumes the
	// replies that reached its topic while it was down, and stores them:
	// it holds their claims, but not their requests.
	began := time.Now()
	a = c.Restart("a")
	t.Logf("node a ready again %v after its restart began", time.Since(began).Round(time.Millisecond))
	for _, req := range toA {
		for _, n := range []*node{cn, a} {
			if status, got := c.poll(n, req.CorrelationID); status != http.StatusOK || got != string(req.Body) {
				t.Errorf("poll %s (answered to a while it was down) on node %s: %d %q, want 200 %q", req.CorrelationID, n.id, status, got, req.Body)
			}
		}
	}
	if got := c.counts(a).replies; got["stored"] != float64(len(toA)) || sum(got) != float64(len(toA)) {
		t.Errorf("the restarted node a consumed %v, want the %d replies sent to it while it was down stored", got, len(toA))
	}
}

// isConnectionLost reports whether err is what a client sees when the
// server process dies under its request.
func isConnectionLost(err error) bool {
	s := err.Error()
	return strings.Contains(s, "EOF") || strings.Contains(s, "connection reset") || strings.Contains(s, "broken pipe")
}

// TestGracefulStopAnswersInFlight: node a is stopped (SIGTERM) while
// requests wait on it (auto route): after the drain timeout each client
// gets 202, a exits 0 and releases its id, and the replies, answered to b
// and c, are pollable on the other nodes. A new node a starts without
// waiting for the lease.
func TestGracefulStopAnswersInFlight(t *testing.T) {
	const inFlight = 6
	c := newCluster(t, nodeIDs...)
	svc := startService(t, c.kafka, holdAll)
	a, b, cn := c.Node("a"), c.Node("b"), c.Node("c")

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	resps := make(chan response, inFlight)
	var wg sync.WaitGroup
	for i := range inFlight {
		wg.Go(func() {
			resp, err := c.post(ctx, a, routeEcho, body(i))
			if err != nil {
				t.Errorf("request %d on node a: %v, want 202 when a stops", i, err)
			}
			resps <- resp
		})
	}
	held := svc.Held(inFlight, 30*time.Second)
	bodies := make(map[string]string)
	for _, req := range held {
		bodies[req.CorrelationID] = string(req.Body)
	}
	if err := a.proc.Stop(30 * time.Second); err != nil {
		t.Errorf("node a exited with %v after SIGTERM, want 0", err)
	}
	wg.Wait()
	close(resps)
	for resp := range resps {
		if resp.status != http.StatusAccepted || bodies[resp.id] == "" {
			t.Errorf("a client of node a got %d (id %s) when a stopped, want 202 for a request the service holds", resp.status, resp.id)
		}
	}
	for i, req := range held {
		if err := svc.Answer(ctx, req, []string{"b", "c"}[i%2]); err != nil {
			t.Fatal(err)
		}
	}
	for i, req := range held {
		n := []*node{cn, b}[i%2] // not the node that consumed the reply
		if status, got := c.poll(n, req.CorrelationID); status != http.StatusOK || got != string(req.Body) {
			t.Errorf("poll %s on node %s: %d %q, want 200 %q", req.CorrelationID, n.id, status, got, req.Body)
		}
	}

	a = c.Restart("a")
	if log := a.proc.Log(); strings.Contains(log, "waiting for its lease to lapse") {
		t.Errorf("the new node a waited for the lease of the one stopped cleanly:\n%s", a.proc.Tail(10))
	}
}

// TestCancelOnAnotherNode: a request accepted by node a is cancelled on
// node b; its reply, consumed by node c, is discarded there, and a poll on
// a answers 410.
func TestCancelOnAnotherNode(t *testing.T) {
	c := newCluster(t, nodeIDs...)
	svc := startService(t, c.kafka, holdAll)
	a, b, cn := c.Node("a"), c.Node("b"), c.Node("c")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	resp, err := c.post(ctx, a, routeEcho, body(0), "Prefer", "respond-async")
	if err != nil || resp.status != http.StatusAccepted {
		t.Fatalf("request on node a: %d %v, want 202", resp.status, err)
	}
	req := svc.Held(1, 30*time.Second)[0]
	if status, body, err := c.send(http.MethodDelete, b, "/v1/requests/"+resp.id); err != nil || status != http.StatusNoContent {
		t.Fatalf("DELETE on node b: %d %q %v, want 204", status, body, err)
	}
	if err := svc.Answer(ctx, req, "c"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "node c consumed the reply", func() bool { return sum(c.counts(cn).replies) == 1 })
	if got := c.counts(cn).replies; got["cancelled"] != 1 {
		t.Errorf("node c: replies %v, want the one cancelled", got)
	}
	if status, body := c.poll(a, resp.id); status != http.StatusGone {
		t.Errorf("poll on node a after the cancel: %d %q, want 410", status, body)
	}
}
