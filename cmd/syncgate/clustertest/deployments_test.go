package clustertest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/testenv"
)

// TestOnSentinelAndRedisCluster runs the core of the suite, which the
// other tests run on a single server, with the nodes' Redis a Sentinel set
// and a Redis Cluster (internal/redistest): misrouted replies forwarded to
// the waiting node, a node killed with requests in flight and its reply
// address adopted, and every request accounted for in the nodes' counts.
// On Kafka.
func TestOnSentinelAndRedisCluster(t *testing.T) {
	for _, rk := range []redisKind{redisSentinel, redisCluster} {
		t.Run(string(rk), func(t *testing.T) {
			t.Run("misrouted replies", func(t *testing.T) { misroutedRepliesReachTheWaitingNode(t, onKafka, rk) })
			t.Run("node killed", func(t *testing.T) { killNodeWithRequestsInFlight(t, onKafka, rk) })
			t.Run("counts reconcile", func(t *testing.T) { countsReconcile(t, rk) })
		})
	}
}

// TestRedisFailoverUnderLoad: under a steady load whose every reply must be
// forwarded through Redis, the Redis master fails over (SENTINEL FAILOVER;
// on the Redis Cluster, CLUSTER FAILOVER of the shard that holds node a's
// channel). No node crashes or needs a restart, no request gets another's
// reply, every request ends 200 or 504 (a reply forwarded while the
// clients switch masters may be lost: README, "Cluster mode"), forwarding
// works on every node again within 15s, and the nodes' counts match the
// clients'.
func TestRedisFailoverUnderLoad(t *testing.T) {
	for _, rk := range []redisKind{redisSentinel, redisCluster} {
		t.Run(string(rk), func(t *testing.T) { redisFailoverUnderLoad(t, rk) })
	}
}

func redisFailoverUnderLoad(t *testing.T, rk redisKind) {
	c := newClusterRedis(t, onKafka, rk, nodeIDs...)
	svc := startService(t, c, misrouteAll)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	l := startLoad(ctx, c, 8, 2000)
	stopped := false
	defer func() {
		if !stopped {
			l.Stop()
		}
	}()
	ok := func(cl call) bool { return cl.err == nil && cl.resp.status == http.StatusOK }
	testenv.Eventually(t, 30*time.Second, "60 requests succeeded before the failover", func() bool { return len(l.snapshot(ok)) >= 60 })

	start := time.Now()
	fctx, fcancel := context.WithTimeout(ctx, 60*time.Second)
	defer fcancel()
	var oldM, newM string
	var err error
	if rk == redisCluster {
		oldM, newM, err = redistest.Cluster(t).Failover(fctx, "clustertest-"+c.suffix+":node:"+c.nodeID("a"))
	} else {
		oldM, newM, err = redistest.Sentinel(t).Failover(fctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	done := time.Now()
	t.Logf("master %s → %s in %v", oldM, newM, done.Sub(start).Round(time.Millisecond))

	// Recovered: a request sent to each node after the failover got its
	// reply, which another node had to forward.
	recovered := make(map[string]time.Time)
	testenv.Eventually(t, 30*time.Second, "forwarded requests succeed on every node after the failover", func() bool {
		for _, cl := range l.snapshot(func(cl call) bool { return ok(cl) && cl.start.After(done) }) {
			if r, seen := recovered[cl.node]; !seen || cl.end.Before(r) {
				recovered[cl.node] = cl.end
			}
		}
		return len(recovered) == len(nodeIDs)
	})
	var recovery time.Duration
	for _, at := range recovered {
		recovery = max(recovery, at.Sub(done))
	}
	t.Logf("forwarding on every node %v after the failover", recovery.Round(time.Millisecond))
	if recovery > 15*time.Second {
		t.Errorf("forwarding took %v to recover after the failover, want under 15s", recovery)
	}
	for _, id := range nodeIDs {
		c.waitReady(c.Node(id))
	}
	calls := l.Stop()
	stopped = true

	for _, id := range nodeIDs {
		n := c.Node(id)
		if n.proc.Exited() {
			t.Fatalf("node %s exited: %v", id, n.proc.Err())
		}
	}
	var okCount, timeouts, inSwitch int
	for _, cl := range calls {
		switch {
		case cl.err != nil:
			t.Errorf("request %q on node %s: %v", cl.body, cl.node, cl.err)
		case cl.resp.status == http.StatusOK:
			okCount++
			if cl.resp.body != cl.body {
				t.Errorf("request %q on node %s got another request's reply: %q", cl.body, cl.node, cl.resp.body)
			}
		case cl.resp.status == http.StatusGatewayTimeout:
			timeouts++
			if cl.end.After(start) && cl.start.Before(done.Add(2*time.Second)) {
				inSwitch++
			}
		default:
			t.Errorf("request %q on node %s: %d %s", cl.body, cl.node, cl.resp.status, strings.TrimSpace(cl.resp.body))
		}
	}
	t.Logf("%d requests: %d ok, %d timed out (%d of them around the switch)", len(calls), okCount, timeouts, inSwitch)
	if timeouts != inSwitch {
		t.Errorf("%d requests timed out away from the failover", timeouts-inSwitch)
	}
	k := c.settle(svc, true, c.Node("a"), c.Node("b"), c.Node("c"))
	lg := reconcile(t, k, 0, failover)
	if lg.published != float64(len(calls)) || lg.delivered != float64(okCount) || lg.expired != float64(timeouts) || lg.stored != 0 {
		t.Errorf("the nodes count %.0f published, %.0f delivered, %.0f stored, %.0f expired; the clients saw %d sent, %d 200, %d 504",
			lg.published, lg.delivered, lg.stored, lg.expired, len(calls), okCount, timeouts)
	}
	t.Logf("replies lost %.0f, forwards lost in transit %.0f; cluster errors %v", lg.lost, lg.inTransit, k.clusterErrors)
}
