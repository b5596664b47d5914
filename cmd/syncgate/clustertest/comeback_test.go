package clustertest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/internal/testenv"
)

// answerToOwner answers every request to the node that sent it.
func answerToOwner(_ envelope.Request, owner string) decision { return decision{node: owner} }

// TestNodeBackWhileAdopted: node a is killed and adopted, then comes back.
// Until the adopter's next round sees a's lease, a and its adopter both
// consume a's reply address. Requests sent to a meanwhile (sync route,
// answered to a's own address) all get their replies, and each reply is
// consumed once: by a, or by the adopter, which forwards it to a. On Kafka
// and on RabbitMQ.
func TestNodeBackWhileAdopted(t *testing.T) {
	onEachBackend(t, nodeBackWhileAdopted)
}

func nodeBackWhileAdopted(t *testing.T, on backend, rk redisKind) {
	c := newClusterRedis(t, on, rk, nodeIDs...)
	svc := startService(t, c, answerToOwner)
	a, b, cn := c.Node("a"), c.Node("b"), c.Node("c")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	a.proc.Kill()
	testenv.Eventually(t, adoptedWithin, "b or c adopts a", func() bool { return c.adopted(b)+c.adopted(cn) > 0 })
	a = c.Restart("a")
	sent := 0
	deadline := time.Now().Add(unadoptedWithin)
	for c.adopted(b)+c.adopted(cn) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a's adoption still holds %v after a was back", unadoptedWithin)
		}
		resp, err := c.post(ctx, a, routeEchoSync, body(sent))
		if err != nil || resp.status != http.StatusOK || resp.body != body(sent) {
			t.Errorf("request %d on node a while its adoption holds: %d %q %v, want 200 with its body", sent, resp.status, resp.body, err)
		}
		sent++
	}
	k := c.settle(svc, false, a, b, cn)
	t.Logf("%d requests sent to a while its adoption held; %v", sent, k)
	l := reconcile(t, k, 0, exact)
	if l.published != float64(sent) || l.delivered != float64(sent) {
		t.Errorf("ledger %+v, want %d published and delivered", l, sent)
	}
}
