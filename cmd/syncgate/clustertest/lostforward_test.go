package clustertest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/testenv"
)

// TestLostForwardIsReadFromTheStore: pub/sub is at most once. With Redis
// made to drop every subscriber that is sent a large message (its pubsub
// output buffer limit set to 1 byte; a message over Redis' 16 KiB static
// buffer counts against it), a forward is published (PUBLISH counts the
// receiver) but never arrives. A waiting request of a pollable route still
// gets its reply when its wait ends, from the store the forwarding node
// wrote first; one of a sync route, which has no store, times out. Once
// the limit is back, forwarding works again.
func TestLostForwardIsReadFromTheStore(t *testing.T) {
	c := newCluster(t, nodeIDs...)
	svc := startService(t, c, misrouteAll)
	a := c.Node("a")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	large := strings.Repeat("x", 32<<10)

	if err := c.redis.Do("CONFIG", "SET", "client-output-buffer-limit", "pubsub 1 1 0"); err != nil {
		t.Fatal(err)
	}
	resp, err := c.post(ctx, a, routeBrief, "pollable "+large)
	if err != nil || resp.status != http.StatusOK || resp.body != "pollable "+large {
		t.Errorf("auto route, forward lost: %d (%d bytes) %v, want 200 with the body read from the store", resp.status, len(resp.body), err)
	}
	resp, err = c.post(ctx, a, routeStrict, "sync "+large)
	if err != nil || resp.status != http.StatusGatewayTimeout {
		t.Errorf("sync route, forward lost: %d %v, want 504", resp.status, err)
	}
	k := c.settle(svc, true, c.Node("a"), c.Node("b"), c.Node("c"))
	if k.replies["forwarded"] != 2 || sum(k.forwards) != 0 {
		t.Errorf("replies %v, forwarded %v: want two forwarded, none arrived", k.replies, k.forwards)
	}
	l := reconcile(t, k, 0, lossy)
	if l.delivered != 0 || l.inTransit != 2 {
		t.Errorf("ledger %+v, want both forwards lost in transit", l)
	}

	if err := c.redis.Do("CONFIG", "SET", "client-output-buffer-limit", "pubsub 32mb 8mb 60"); err != nil {
		t.Fatal(err)
	}
	// The listeners reconnect by themselves (within their 2s back-off).
	testenv.Eventually(t, 15*time.Second, "a forwarded reply reaches node a again", func() bool {
		resp, err := c.post(ctx, a, routeStrict, "again "+large)
		return err == nil && resp.status == http.StatusOK && resp.body == "again "+large
	})
	// The count follows the delivery: the woken request may be answered
	// before the forwarding goroutine has added its outcome (a CI run read
	// 0 here).
	testenv.Eventually(t, 5*time.Second, "node a counts a forwarded reply delivered after the limit was lifted", func() bool {
		return c.counts(a).forwards["delivered"] >= 1
	})
}
