package clustertest

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/syncgate/syncgate/gateway"
)

const routeGather = "/gather"

// TestGatherAcrossNodes: a scatter-gather request accepted (202) by node
// a, which is then killed; the service answers one part to b's reply
// address and the other to c's. Each stores its part, the second finds
// the parent and stores the document, and the poll on either node gives
// it, with both bodies: no node that took part had to be the one that
// accepted the request.
func TestGatherAcrossNodes(t *testing.T) {
	c := newClusterRoutes(t, `  - {name: gather, method: POST, path: `+routeGather+`, mode: auto, wait: 20s, timeout: 30s,
     parts: [{name: one, destination: ${requests}}, {name: two, destination: ${requests}}]}
`, nodeIDs...)
	svc := startService(t, c, holdAll)
	a, b, cn := c.Node("a"), c.Node("b"), c.Node("c")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	resp, err := c.post(ctx, a, routeGather, "gathered", "Prefer", "respond-async")
	if err != nil {
		t.Fatal(err)
	}
	if resp.status != http.StatusAccepted {
		t.Fatalf("node a: %d %s, want 202", resp.status, resp.body)
	}
	held := svc.Held(2, 30*time.Second)
	parts := map[string]string{}
	for _, req := range held {
		if req.ParentID != resp.id || req.CorrelationID == resp.id {
			t.Fatalf("part %s: parent-id %q, want %s", req.CorrelationID, req.ParentID, resp.id)
		}
		parts[req.Part] = req.CorrelationID
	}
	if len(parts) != 2 || parts["one"] == "" || parts["two"] == "" {
		t.Fatalf("parts %v, want one and two", parts)
	}
	a.proc.Kill()
	for i, req := range held {
		if err := svc.Answer(ctx, req, []string{"b", "c"}[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*node{cn, b} {
		status, body := c.poll(n, resp.id)
		var d gateway.GatherDoc
		if status != http.StatusOK || json.Unmarshal([]byte(body), &d) != nil || d.ID != resp.id || len(d.Parts) != 2 {
			t.Fatalf("poll on node %s: %d %s", n.id, status, body)
		}
		for _, p := range d.Parts {
			if p.State != gateway.PartDone || p.Status != 200 || p.BodyText == nil || *p.BodyText != "gathered" || p.ID != parts[p.Name] {
				t.Errorf("node %s, part %+v", n.id, p)
			}
		}
	}
}
