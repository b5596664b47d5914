package clustertest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/internal/testenv"
)

// misrouteAll answers every request to another node than the one that
// sent it, so that every reply needs Redis to reach its request.
func misrouteAll(_ envelope.Request, owner string) decision {
	return decision{node: otherNode(nodeIDs, owner)}
}

// call is one request of a load run and what became of it.
type call struct {
	node       string
	body       string
	start, end time.Time
	resp       response
	err        error
}

// load sends requests to the strict route (sync, 2s), round robin over
// nodes, from workers goroutines, until stopped.
type load struct {
	c     *cluster
	mu    sync.Mutex
	calls []call
	stop  chan struct{}
	wg    sync.WaitGroup
	seq   atomic.Int64
}

func startLoad(ctx context.Context, c *cluster, workers, maxPerWorker int) *load {
	l := &load{c: c, stop: make(chan struct{})}
	for range workers {
		l.wg.Go(func() {
			for range maxPerWorker {
				select {
				case <-l.stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				i := int(l.seq.Add(1))
				n := c.Node(nodeIDs[i%len(nodeIDs)])
				cl := call{node: n.id, body: fmt.Sprintf("load %d %016x", i, runNonce), start: time.Now()}
				cl.resp, cl.err = c.post(ctx, n, routeStrict, cl.body)
				cl.end = time.Now()
				l.mu.Lock()
				l.calls = append(l.calls, cl)
				l.mu.Unlock()
			}
		})
	}
	return l
}

// Stop ends the run and returns every call.
func (l *load) Stop() []call {
	close(l.stop)
	l.wg.Wait()
	return l.snapshot(func(call) bool { return true })
}

// snapshot returns the calls so far for which keep holds.
func (l *load) snapshot(keep func(call) bool) []call {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []call
	for _, cl := range l.calls {
		if keep(cl) {
			out = append(out, cl)
		}
	}
	return out
}

// okCall: the request got a 200 (its body is checked by tally).
func okCall(cl call) bool { return cl.err == nil && cl.resp.status == http.StatusOK }

// startForwardedLoad starts, on c, the service that misroutes every reply
// (so that each needs Redis to reach its request) and a load of 8 workers
// on the strict route, and returns once 60 requests succeeded, before what
// the test does to Redis. The load is stopped when the test ends unless
// the test stopped it.
func startForwardedLoad(t *testing.T, ctx context.Context, c *cluster, before string) (*service, *load) {
	t.Helper()
	svc := startService(t, c, misrouteAll)
	l := startLoad(ctx, c, 8, 2000)
	t.Cleanup(func() {
		select {
		case <-l.stop:
		default:
			l.Stop()
		}
	})
	testenv.Eventually(t, 30*time.Second, "60 requests succeeded before "+before, func() bool { return len(l.snapshot(okCall)) >= 60 })
	return svc, l
}

// waitForwarding waits until a request sent to each node after since got
// its reply, which another node had to forward, and returns, per node, when
// the first such request ended, and the longest wait after since.
func waitForwarding(t *testing.T, l *load, since time.Time, what string) (map[string]time.Time, time.Duration) {
	t.Helper()
	recovered := make(map[string]time.Time)
	testenv.Eventually(t, 30*time.Second, "forwarded requests succeed on every node "+what, func() bool {
		for _, cl := range l.snapshot(func(cl call) bool { return okCall(cl) && cl.start.After(since) }) {
			if r, seen := recovered[cl.node]; !seen || cl.end.Before(r) {
				recovered[cl.node] = cl.end
			}
		}
		return len(recovered) == len(nodeIDs)
	})
	var recovery time.Duration
	for _, at := range recovered {
		recovery = max(recovery, at.Sub(since))
	}
	return recovered, recovery
}

// tally counts the 200s and 504s of calls; any other outcome, or a 200
// with another request's body, fails the test.
func tally(t *testing.T, calls []call) (okCount, timeouts int) {
	t.Helper()
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
		default:
			t.Errorf("request %q on node %s: %d %s", cl.body, cl.node, cl.resp.status, strings.TrimSpace(cl.resp.body))
		}
	}
	return okCount, timeouts
}

// checkLedger fails the test unless the nodes' counts match the clients'.
func checkLedger(t *testing.T, lg ledger, calls []call, okCount, timeouts int) {
	t.Helper()
	if lg.published != float64(len(calls)) || lg.delivered != float64(okCount) || lg.expired != float64(timeouts) || lg.stored != 0 {
		t.Errorf("the nodes count %.0f published, %.0f delivered, %.0f stored, %.0f expired; the clients saw %d sent, %d 200, %d 504",
			lg.published, lg.delivered, lg.stored, lg.expired, len(calls), okCount, timeouts)
	}
}

// TestRedisRestart: under a steady load whose every reply must be forwarded
// through Redis, Redis is killed and started again, empty. No node
// crashes, readiness reports the outage as degraded, no request gets
// another's reply, forwarding recovers within 15s of Redis being back, and
// every request is accounted for.
func TestRedisRestart(t *testing.T) {
	c := newCluster(t, nodeIDs...)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	svc, l := startForwardedLoad(t, ctx, c, "the outage")

	down := time.Now()
	c.redis.Kill()
	for _, id := range nodeIDs {
		testenv.Eventually(t, 10*time.Second, "node "+id+" reports Redis degraded", func() bool {
			status, body, err := c.get(c.Node(id), "/readyz")
			return err == nil && status == http.StatusOK && strings.HasPrefix(body, "ready (degraded)") && strings.Contains(body, "redis")
		})
	}
	duringOutage := func(cl call) bool { return cl.start.After(down) }
	testenv.Eventually(t, 20*time.Second, "8 requests sent during the outage ended", func() bool { return len(l.snapshot(duringOutage)) >= 8 })

	c.redis.Start()
	back := time.Now()
	outage := l.snapshot(func(cl call) bool { return duringOutage(cl) && cl.end.Before(back) })
	failedInOutage := 0
	for _, cl := range outage {
		if cl.err == nil && cl.resp.status == http.StatusGatewayTimeout {
			failedInOutage++
		}
	}
	t.Logf("Redis down for %v: %d requests sent in that time ended before it was back, %d of them 504",
		back.Sub(down).Round(time.Millisecond), len(outage), failedInOutage)
	if failedInOutage == 0 {
		t.Errorf("no request failed while Redis was down, though every reply needed forwarding: %d ended", len(outage))
	}

	recovered, recovery := waitForwarding(t, l, back, "again")
	t.Logf("forwarding recovered %v after Redis was back (per node: a %v, b %v, c %v)", recovery.Round(time.Millisecond),
		recovered["a"].Sub(back).Round(time.Millisecond), recovered["b"].Sub(back).Round(time.Millisecond),
		recovered["c"].Sub(back).Round(time.Millisecond))
	if recovery > 15*time.Second {
		t.Errorf("forwarding took %v to recover after Redis was back, want under 15s", recovery)
	}
	for _, id := range nodeIDs {
		c.waitReady(c.Node(id)) // "ok", no longer degraded
	}
	calls := l.Stop()

	// Steady again: every request succeeds.
	after := startLoad(ctx, c, 12, 5)
	final := after.Stop()
	for _, cl := range final {
		if !okCall(cl) || cl.resp.body != cl.body {
			t.Errorf("after recovery, request %q on node %s: %d %q %v", cl.body, cl.node, cl.resp.status, cl.resp.body, cl.err)
		}
	}
	calls = append(calls, final...)

	for _, id := range nodeIDs {
		n := c.Node(id)
		if n.proc.Exited() {
			t.Fatalf("node %s exited: %v", id, n.proc.Err())
		}
		if status, _, err := c.get(n, "/healthz"); err != nil || status != http.StatusOK {
			t.Errorf("node %s /healthz: %d %v", id, status, err)
		}
	}

	// No reply handed to the wrong request; the HTTP tally adds up.
	okCount, timeouts := tally(t, calls)
	if okCount+timeouts != len(calls) {
		t.Errorf("%d requests sent, %d answered 200 and %d 504", len(calls), okCount, timeouts)
	}

	k := c.settle(svc, true, c.Node("a"), c.Node("b"), c.Node("c"))
	t.Logf("%d requests: %d ok, %d timed out; %v", len(calls), okCount, timeouts, k)
	lg := reconcile(t, k, 0, lossy)
	checkLedger(t, lg, calls, okCount, timeouts)
	t.Logf("during the outage: %.0f replies lost (Redis down), %.0f forwards lost in transit; cluster errors %v",
		lg.lost, lg.inTransit, k.clusterErrors)
}
