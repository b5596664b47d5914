package clustertest

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
)

// When the test service answers a kind of request.
const (
	answerNow   = iota // at once
	answerAfter        // after the client got its answer (202 or 504)
	answerNever
)

// kind is one way a request can go, named in its body.
type kind struct {
	name     string
	path     string
	async    bool // Prefer: respond-async
	misroute bool // answered to another node's reply topic
	when     int
	status   int // what the client gets
}

var kinds = []kind{
	{"direct", routeEcho, false, false, answerNow, http.StatusOK},
	{"misrouted", routeEcho, false, true, answerNow, http.StatusOK},
	{"misrouted-sync", routeEchoSync, false, true, answerNow, http.StatusOK},
	{"async", routeEcho, true, false, answerNow, http.StatusAccepted},
	{"async-misrouted", routeEcho, true, true, answerNow, http.StatusAccepted},
	{"late", routeBrief, false, false, answerAfter, http.StatusAccepted},
	{"late-misrouted", routeBrief, false, true, answerAfter, http.StatusAccepted},
	{"late-sync", routeStrict, false, false, answerAfter, http.StatusGatewayTimeout},
	{"late-sync-misrouted", routeStrict, false, true, answerAfter, http.StatusGatewayTimeout},
	{"unanswered", routeStrict, false, false, answerNever, http.StatusGatewayTimeout},
}

func kindOf(body []byte) kind {
	name, _, _ := strings.Cut(string(body), " ")
	for _, k := range kinds {
		if k.name == name {
			return k
		}
	}
	panic("no kind in body " + string(body))
}

// answerTo is the node a request of kind k sent by owner is answered to.
func (k kind) answerTo(owner string) string {
	if k.misroute {
		return otherNode(nodeIDs, owner)
	}
	return owner
}

// TestCountsReconcile: requests of every kind (answered in time, directly
// or misrouted; accepted and answered later; late for a sync route; never
// answered) on every node. The clients' tally is 200s + 202s + 504s =
// requests sent, the nodes' is published = delivered + stored + expired,
// each outcome counted exactly where it happened, and every 202 is
// pollable with its reply on another node.
func TestCountsReconcile(t *testing.T) { countsReconcile(t, redisPrivate) }

func countsReconcile(t *testing.T, rk redisKind) {
	const perKind = 6 // two per node
	c := newClusterRedis(t, onKafka, rk, nodeIDs...)
	svc := startService(t, c, func(req envelope.Request, owner string) decision {
		k := kindOf(req.Body)
		if k.when != answerNow {
			return decision{hold: true}
		}
		return decision{node: k.answerTo(owner)}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	type sent struct {
		kind kind
		node *node
		body string
		resp response
		err  error
	}
	var all []*sent
	var wg sync.WaitGroup
	for _, k := range kinds {
		for i := range perKind {
			s := &sent{kind: k, node: c.Node(nodeIDs[i%len(nodeIDs)]), body: fmt.Sprintf("%s %d %016x", k.name, i, runNonce)}
			all = append(all, s)
			wg.Go(func() {
				var prefer []string
				if k.async {
					prefer = []string{"Prefer", "respond-async"}
				}
				s.resp, s.err = c.post(ctx, s.node, k.path, s.body, prefer...)
			})
		}
	}
	wg.Wait()
	tally := make(map[int]int)
	for _, s := range all {
		if s.err != nil {
			t.Fatalf("%s on node %s: %v", s.body, s.node.id, s.err)
		}
		tally[s.resp.status]++
		if s.resp.status != s.kind.status {
			t.Errorf("%s on node %s: %d %q, want %d", s.body, s.node.id, s.resp.status, s.resp.body, s.kind.status)
		} else if s.resp.status == http.StatusOK && s.resp.body != s.body {
			t.Errorf("%s on node %s: got the body %q", s.body, s.node.id, s.resp.body)
		}
	}
	if got := tally[http.StatusOK] + tally[http.StatusAccepted] + tally[http.StatusGatewayTimeout]; got != len(all) {
		t.Errorf("%d requests sent; answered %v", len(all), tally)
	}

	// Every client has its answer: now the late replies come.
	held := svc.Held(5*perKind, 30*time.Second) // the late ones and the unanswered
	for _, req := range held {
		if k := kindOf(req.Body); k.when == answerAfter {
			if err := svc.Answer(ctx, req, k.answerTo(c.owner(req))); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, s := range all {
		if s.resp.status != http.StatusAccepted {
			continue
		}
		other := c.Node(otherNode(nodeIDs, s.node.id))
		if status, got := c.poll(other, s.resp.id); status != http.StatusOK || got != s.body {
			t.Errorf("%s, accepted by node %s: poll on node %s: %d %q", s.body, s.node.id, other.id, status, got)
		}
	}

	k := c.settle(svc, false, c.Node("a"), c.Node("b"), c.Node("c"))
	t.Logf("clients: %v; nodes: %v", tally, k)
	l := reconcile(t, k, perKind, exact)
	want := ledger{published: 10 * perKind, delivered: 3 * perKind, stored: 4 * perKind, expired: 3 * perKind}
	if l != want {
		t.Errorf("ledger %+v, want %+v", l, want)
	}
	if l.delivered != float64(tally[http.StatusOK]) || l.stored != float64(tally[http.StatusAccepted]) || l.expired != float64(tally[http.StatusGatewayTimeout]) {
		t.Errorf("the nodes count %.0f delivered, %.0f stored, %.0f expired; the clients got %v", l.delivered, l.stored, l.expired, tally)
	}
	if k.accepted != float64(tally[http.StatusAccepted]) {
		t.Errorf("syncgate_accepted_total: %.0f, the clients got %d 202s", k.accepted, tally[http.StatusAccepted])
	}
	// Where each outcome happened: on the node that consumed the reply, or,
	// forwarded, on the node that held the request.
	wantReplies := map[string]float64{
		"delivered": perKind,     // direct
		"forwarded": 4 * perKind, // misrouted, misrouted-sync, late-misrouted, late-sync-misrouted
		"stored":    3 * perKind, // async, async-misrouted (nobody claimed it), late
		"orphan":    perKind,     // late-sync
		"duplicate": 0, "invalid": 0, "cancelled": 0, "lost": 0, "progress": 0, "progress_ignored": 0, "unneeded": 0,
	}
	wantForwards := map[string]float64{
		"delivered": 2 * perKind, // misrouted, misrouted-sync
		"stored":    perKind,     // late-misrouted: its forwarder stored it first
		"orphan":    perKind,     // late-sync-misrouted
		"duplicate": 0, "forwarded": 0, "invalid": 0, "cancelled": 0, "lost": 0, "progress": 0, "progress_ignored": 0, "unneeded": 0,
	}
	if !maps.Equal(k.replies, wantReplies) {
		t.Errorf("syncgate_replies_total %v, want %v", k.replies, wantReplies)
	}
	if !maps.Equal(k.forwards, wantForwards) {
		t.Errorf("syncgate_forwarded_replies_total %v, want %v", k.forwards, wantForwards)
	}
}
