package clustertest

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/internal/testenv"
)

func holdAll(envelope.Request, string) decision { return decision{hold: true} }

// TestPollAnotherNodeWhileOwnerIsDown: two requests accepted (202) by node
// a; a is killed; the service answers one to b's reply topic and one to
// c's. Both are pollable on c (and on b), with their bodies.
func TestPollAnotherNodeWhileOwnerIsDown(t *testing.T) {
	c := newCluster(t, nodeIDs...)
	svc := startService(t, c, holdAll)
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
		if sent[req.CorrelationID] != string(req.Body) || req.ReplyTo != c.replyAddr("a") {
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
	// One of b and c adopts a's reply address meanwhile, but nothing was
	// sent there: these are the two replies.
	k := c.counts(b, cn)
	if k.replies["stored"] != 2 || sum(k.replies) != 2 {
		t.Errorf("nodes b and c consumed %v, want both replies stored", k.replies)
	}
}

// TestKillNodeWithRequestsInFlight: requests wait on node a (auto route)
// when a is killed. Its clients lose their connections, but the service
// still holds the requests and answers them while a is down: a third to
// b's reply address, a third to c's and a third to a's own, which nobody
// consumes until, a's lease lapsed, one of b and c adopts it. Every reply
// is pollable, with its body, on b and on c without a coming back, within
// a few lease TTLs of a's death. When a is back the adoption ends, and a
// serves the polls too. On Kafka and on RabbitMQ.
func TestKillNodeWithRequestsInFlight(t *testing.T) {
	onEachBackend(t, killNodeWithRequestsInFlight)
}

// Bounds of the adoption of a dead node's reply address: its lease lapses
// within one lease TTL, the adopters look once per TTL, and the adopter
// needs a moment to consume; its replies are pollable within these bounds
// of the death, and the adoption ends within the other of the node's
// return (the adopters see its lease live again at their next round).
const (
	adoptedWithin   = 5 * leaseTTL
	unadoptedWithin = 3 * leaseTTL
)

func killNodeWithRequestsInFlight(t *testing.T, on backend, rk redisKind) {
	const inFlight = 24
	c := newClusterRedis(t, on, rk, nodeIDs...)
	svc := startService(t, c, holdAll)
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
		if !sent[string(req.Body)] || req.ReplyTo != c.replyAddr("a") {
			t.Fatalf("the service got %s (reply to %s, body %q), which node a did not send", req.CorrelationID, req.ReplyTo, req.Body)
		}
	}
	if w := c.scrape(a).value("syncgate_waiting_requests"); w != inFlight {
		t.Fatalf("node a has %.0f requests waiting, want %d", w, inFlight)
	}
	for _, n := range []*node{a, b, cn} {
		if got := c.adopted(n); got != 0 {
			t.Fatalf("node %s adopts %.0f nodes while all live, want 0", n.id, got)
		}
	}

	a.proc.Kill()
	killed := time.Now()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !isConnectionLost(err) {
			t.Errorf("a client of node a: %v, want its connection lost", err)
		}
	}
	answeredTo := make(map[string]string)
	toNode := make(map[string]int)
	for i, req := range held {
		to := nodeIDs[i%len(nodeIDs)]
		if err := svc.Answer(ctx, req, to); err != nil {
			t.Fatal(err)
		}
		answeredTo[req.CorrelationID] = to
		toNode[to]++
	}
	testenv.Eventually(t, adoptedWithin, "b or c adopts a", func() bool { return c.adopted(b)+c.adopted(cn) > 0 })
	adopted := time.Since(killed)
	for _, req := range held {
		for _, n := range []*node{b, cn} {
			status, got := c.poll(n, req.CorrelationID)
			if status != http.StatusOK || got != string(req.Body) {
				t.Errorf("poll %s (answered to %s) on node %s: %d %q, want 200 %q",
					req.CorrelationID, answeredTo[req.CorrelationID], n.id, status, got, req.Body)
			}
		}
	}
	pollable := time.Since(killed)

	// Exactly one adopter, which consumed a's replies besides its own.
	adopter, other := b, cn
	gb, gc := c.adopted(b), c.adopted(cn)
	switch {
	case gb == 1 && gc == 0:
	case gb == 0 && gc == 1:
		adopter, other = cn, b
	default:
		t.Fatalf("syncgate_adopted_nodes: b %.0f, c %.0f once a's replies were pollable; want 1 on exactly one of them", gb, gc)
	}
	t.Logf("node a killed; %s adopted it %v later; %d replies answered to a, %d to b and %d to c, all pollable on b and c %v after the kill",
		adopter.id, adopted.Round(time.Millisecond), toNode["a"], toNode["b"], toNode["c"], pollable.Round(time.Millisecond))
	if pollable > adoptedWithin {
		t.Errorf("the replies were pollable %v after a was killed, want within %v (lease TTL %v)", pollable, adoptedWithin, leaseTTL)
	}
	for _, x := range []struct {
		n    *node
		want int
	}{{adopter, toNode[adopter.id] + toNode["a"]}, {other, toNode[other.id]}} {
		k := c.counts(x.n)
		if k.replies["stored"] != float64(x.want) || sum(k.replies) != float64(x.want) {
			t.Errorf("node %s consumed %v, want %d replies stored (their node is gone)", x.n.id, k.replies, x.want)
		}
		if sum(k.clusterErrors) != 0 {
			t.Errorf("cluster errors on node %s: %v", x.n.id, k.clusterErrors)
		}
	}

	// a comes back under its id (its lease lapsed long ago): the adopter
	// lets its reply address go, and a, which consumes nothing (its
	// adopter consumed and committed or acknowledged everything), serves
	// the polls from the store.
	began := time.Now()
	a = c.Restart("a")
	ready := time.Now()
	testenv.Eventually(t, unadoptedWithin, "the adoption of a ends on b and c", func() bool {
		return c.adopted(b) == 0 && c.adopted(cn) == 0
	})
	t.Logf("node a ready again %v after its restart began; its adoption ended %v after that",
		ready.Sub(began).Round(time.Millisecond), time.Since(ready).Round(time.Millisecond))
	for _, req := range held {
		if status, got := c.poll(a, req.CorrelationID); status != http.StatusOK || got != string(req.Body) {
			t.Errorf("poll %s (answered to %s) on the restarted node a: %d %q, want 200 %q",
				req.CorrelationID, answeredTo[req.CorrelationID], status, got, req.Body)
		}
	}
	if got := c.counts(a).replies; sum(got) != 0 {
		t.Errorf("the restarted node a consumed %v, want nothing: its adopter handled the replies addressed to it", got)
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
	svc := startService(t, c, holdAll)
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
	svc := startService(t, c, holdAll)
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
	testenv.Eventually(t, 30*time.Second, "node c consumed the reply", func() bool { return sum(c.counts(cn).replies) == 1 })
	if got := c.counts(cn).replies; got["cancelled"] != 1 {
		t.Errorf("node c: replies %v, want the one cancelled", got)
	}
	if status, body := c.poll(a, resp.id); status != http.StatusGone {
		t.Errorf("poll on node a after the cancel: %d %q, want 410", status, body)
	}
}
