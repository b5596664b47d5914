package clustertest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/testenv"
)

// TestAdoptionAfterRedisRestart: Redis restarts empty (no persistence),
// the nodes take their leases again; then node a dies with a request it
// accepted (202) whose reply the service sends to a's own reply address.
// As before the restart, another node should adopt a's address and store
// the reply, so that it is pollable on b. (Without the Redis restart this
// passes: the reply is pollable about one lease TTL after the kill.)
func TestAdoptionAfterRedisRestart(t *testing.T) {
	c := newCluster(t, nodeIDs...)
	svc := startService(t, c, holdAll)
	a, b := c.Node("a"), c.Node("b")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	c.redis.Kill()
	c.redis.Start()
	for _, id := range nodeIDs {
		c.waitReady(c.Node(id))
	}
	// A 202 needs the claim and the pending record in Redis: the nodes
	// use it again.
	var resp response
	testenv.Eventually(t, 15*time.Second, "node a accepts a request again", func() bool {
		r, err := c.post(ctx, a, routeEcho, body(0), "Prefer", "respond-async")
		resp = r
		return err == nil && r.status == http.StatusAccepted
	})
	req := svc.Held(1, 30*time.Second)[0]
	if req.CorrelationID != resp.id {
		t.Fatalf("the service holds %s, node a accepted %s", req.CorrelationID, resp.id)
	}
	// Let every node refresh its lease at least once in the new Redis.
	testenv.Eventually(t, 2*leaseTTL, "the nodes' leases are back", func() bool {
		for _, id := range nodeIDs {
			if n, err := c.redis.Exists("clustertest:{nodes}:lease:" + c.nodeID(id)); err != nil || n != 1 {
				return false
			}
		}
		return true
	})

	a.proc.Kill()
	killed := time.Now()
	if err := svc.Answer(ctx, req, "a"); err != nil {
		t.Fatal(err)
	}
	deadline := killed.Add(adoptedWithin)
	for {
		status, got, err := c.get(b, "/v1/requests/"+resp.id+"?wait=1s")
		if err == nil && status == http.StatusOK && got == body(0) {
			t.Logf("the reply addressed to the dead node a is pollable on b %v after a was killed", time.Since(killed).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			members, _ := c.redis.Exists("clustertest:{nodes}")
			t.Fatalf("poll on node b %v after a was killed: %d %q %v, want 200 %q (adopted nodes: b %.0f, c %.0f; members hash exists: %d)",
				adoptedWithin, status, got, err, body(0), c.adopted(b), c.adopted(c.Node("c")), members)
		}
	}
}
