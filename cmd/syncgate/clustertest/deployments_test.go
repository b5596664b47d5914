package clustertest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/redistest"
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

// TestOnSecuredRedis runs the forwarding test on a Sentinel set and a
// Redis Cluster that require TLS with client certificates and an ACL user
// (and a password on the sentinels), configured in the nodes' YAML the way
// an operator writes it: the nodes join, and replies forwarded through
// Redis reach the waiting node.
func TestOnSecuredRedis(t *testing.T) {
	for _, rk := range []redisKind{redisSecureSentinel, redisSecureCluster} {
		t.Run(string(rk), func(t *testing.T) { misroutedRepliesReachTheWaitingNode(t, onKafka, rk) })
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
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	svc, l := startForwardedLoad(t, ctx, c, "the failover")

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

	_, recovery := waitForwarding(t, l, done, "after the failover")
	t.Logf("forwarding on every node %v after the failover", recovery.Round(time.Millisecond))
	if recovery > 15*time.Second {
		t.Errorf("forwarding took %v to recover after the failover, want under 15s", recovery)
	}
	for _, id := range nodeIDs {
		c.waitReady(c.Node(id))
	}
	calls := l.Stop()

	for _, id := range nodeIDs {
		n := c.Node(id)
		if n.proc.Exited() {
			t.Fatalf("node %s exited: %v", id, n.proc.Err())
		}
	}
	okCount, timeouts := tally(t, calls)
	inSwitch := 0
	for _, cl := range calls {
		if cl.err == nil && cl.resp.status == http.StatusGatewayTimeout && cl.end.After(start) && cl.start.Before(done.Add(2*time.Second)) {
			inSwitch++
		}
	}
	t.Logf("%d requests: %d ok, %d timed out (%d of them around the switch)", len(calls), okCount, timeouts, inSwitch)
	if timeouts != inSwitch {
		t.Errorf("%d requests timed out away from the failover", timeouts-inSwitch)
	}
	k := c.settle(svc, true, c.Node("a"), c.Node("b"), c.Node("c"))
	lg := reconcile(t, k, 0, failover)
	checkLedger(t, lg, calls, okCount, timeouts)
	t.Logf("replies lost %.0f, forwards lost in transit %.0f; cluster errors %v", lg.lost, lg.inTransit, k.clusterErrors)
}
