package redisstate_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/correlation/redisstate"
	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/testenv"
)

// On a Redis Cluster a forward is a sharded publish: the node's channel
// has a shard subscriber and no plain one, so the reply is not broadcast
// over the cluster bus.
func TestClusterForwardIsSharded(t *testing.T) {
	rdb, cfg := newClientOn(t, deployments[2])
	r := redisstate.NewRouter(rdb, cfg)
	ctx := t.Context()
	_, got := listen(t, r, ctx, "a")
	ch := cfg.Prefix + "node:a"
	// PUBSUB counts a node's own subscribers: add up every node's.
	var mu sync.Mutex
	var shard, plain int64
	err := rdb.(*goredis.ClusterClient).ForEachShard(ctx, func(ctx context.Context, c *goredis.Client) error {
		s, err := c.PubSubShardNumSub(ctx, ch).Result()
		if err != nil {
			return err
		}
		p, err := c.PubSubNumSub(ctx, ch).Result()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		shard, plain = shard+s[ch], plain+p[ch]
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if shard != 1 || plain != 0 {
		t.Fatalf("channel %s: %d shard subscribers, %d plain ones; want 1 and 0", ch, shard, plain)
	}
	rep := reply(correlation.NewID())
	if err := r.Claim(ctx, rep.CorrelationID, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	if owner, delivered, err := r.ForwardToOwner(ctx, "b", rep); err != nil || owner != "a" || !delivered {
		t.Fatalf("ForwardToOwner = %q, %v, %v", owner, delivered, err)
	}
	if got := receive(t, got); got.CorrelationID != rep.CorrelationID {
		t.Fatalf("received %s, want %s", got.CorrelationID, rep.CorrelationID)
	}
}

// A master failover under a node's state: the claims, results and lease
// written before are there after, the listener is subscribed again by
// itself and a forward reaches it, and the lease keeps refreshing. On the
// cluster, the failover is of the shard that holds the node's channel.
//
// Every wait has a deadline and fails naming what did not happen, with the
// servers' roles and subscribers: nothing here waits for the test binary's
// -timeout.
func TestFailover(t *testing.T) {
	// The plain Sentinel set and Redis Cluster: the secured deployments
	// after them have no failover helper of their own here.
	for _, d := range deployments[1:3] {
		t.Run(d.name, func(t *testing.T) {
			rdb, cfg := newClientOn(t, d)
			r := redisstate.NewRouter(rdb, cfg)
			store := redisstate.NewStore(rdb, cfg)
			ch := cfg.Prefix + "node:a"
			describe := func() string { return redistest.Sentinel(t).Describe(ch) }
			if d.name == redisstate.ModeCluster {
				describe = func() string { return redistest.Cluster(t).Describe(ch) }
			}
			ctx := t.Context()
			lease, err := r.Join(within(t, stepTimeout), "a", 900*time.Millisecond, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { closeWithin(t, "the lease of node a", lease.Close) })
			_, got := listen(t, r, ctx, "a")
			before := reply(correlation.NewID())
			if err := r.ClaimPending(within(t, stepTimeout), before.CorrelationID, "a", "", time.Minute, time.Minute); err != nil {
				t.Fatal(err)
			}

			fctx := within(t, 60*time.Second)
			var oldM, newM string
			if d.name == redisstate.ModeCluster {
				oldM, newM, err = redistest.Cluster(t).Failover(fctx, ch)
			} else {
				oldM, newM, err = redistest.Sentinel(t).Failover(fctx)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("failover %s → %s", oldM, newM)

			// Writes were replicated before the switch (CLUSTER FAILOVER
			// waits for the replica to catch up; Sentinel's is
			// asynchronous, but nothing was written for a while).
			if owner, err := r.Owner(within(t, stepTimeout), before.CorrelationID); err != nil || owner != "a" {
				t.Fatalf("Owner after the failover = %q, %v", owner, err)
			}
			// The client may fail commands while it finds the new master;
			// the forward then reaches the resubscribed listener.
			forwardUntilDelivered(t, r, got, "a forward delivered after the failover", describe)
			if err := store.Complete(within(t, stepTimeout), before); err != nil {
				t.Fatalf("Complete after the failover: %v", err)
			}
			if res, err := store.Get(within(t, stepTimeout), before.CorrelationID); err != nil || res.State != correlation.StateDone {
				t.Fatalf("Get after the failover = %+v, %v", res, err)
			}
			// The lease refreshed through the switch: still held, by us.
			lctx := within(t, 5*time.Second)
			testenv.Eventually(t, 5*time.Second, "lease held after the failover", func() bool {
				live, err := r.Live(lctx, "a")
				return err == nil && live && lease.Err() == nil
			})
		})
	}
}

// The master that holds a node's channel dies without a coordinated
// failover (SIGKILL): the cluster promotes its replica, and the listener,
// whose PubSub would reconnect to the dead node for as long as the
// client's slot map names it, subscribes on the new master by itself.
func TestClusterMasterKilled(t *testing.T) {
	rdb, cfg := newClientOn(t, deployments[2])
	r := redisstate.NewRouter(rdb, cfg)
	ctx := t.Context()
	_, got := listen(t, r, ctx, "a")
	c := redistest.Cluster(t)
	ch := cfg.Prefix + "node:a"
	killed, promoted, restart, err := c.KillMaster(within(t, 60*time.Second), ch)
	if restart != nil {
		t.Cleanup(func() {
			rctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := restart(rctx); err != nil {
				t.Errorf("restarting the killed master %s: %v", killed, err)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	promotedAt := time.Now()
	t.Logf("killed %s, %s promoted", killed, promoted)
	// The killed node stays down meanwhile: a listener reconnecting to it
	// would never get a forward.
	forwardUntilDelivered(t, r, got, "a forward delivered after the master died", func() string { return c.Describe(ch) })
	t.Logf("forwarding back %v after the promotion was seen", time.Since(promotedAt).Round(time.Millisecond))
}

// stepTimeout bounds the Redis calls of one step of these tests: go-redis
// ends a call, its retries included, at its context's deadline.
const stepTimeout = 10 * time.Second

// within returns a context of t's that ends after d.
func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// forwardTimeout bounds forwardUntilDelivered: once the client's slot map
// has caught up with a failover, the listener finds the new master within
// a probe interval or two.
const forwardTimeout = 20 * time.Second

// forwardUntilDelivered claims a new id for node a and forwards a reply to
// it from node b, every 10 ms, until a forward counts a subscriber and a's
// listener receives it; it reads meanwhile whatever else the listener is
// sent. It fails t after forwardTimeout with the last outcome and
// describe's account of the servers.
//
// A forward that counts no subscriber may still reach the listener: Redis
// 7 serves SSUBSCRIBE on a replica, and a master's SPUBLISH reaches its
// replicas' subscribers without counting them. A listener left on the
// demoted master by a failover gets those replies until its probe moves
// it; one whose replies nobody reads stalls there (see listen).
func forwardUntilDelivered(t *testing.T, r *redisstate.Router, got <-chan envelope.Reply, what string, describe func() string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), forwardTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	undelivered, last := 0, "none"
	for {
		drain(got)
		rep := reply(correlation.NewID())
		var outcome string
		if err := r.Claim(ctx, rep.CorrelationID, "a", time.Minute); err != nil {
			outcome = "claim: " + err.Error()
		} else if _, delivered, err := r.ForwardToOwner(ctx, "b", rep); err != nil {
			outcome = "forward: " + err.Error()
		} else if !delivered {
			undelivered++
			outcome = "forward: no subscriber counted"
		} else if awaitReply(ctx, got, rep.CorrelationID) {
			return
		} else {
			outcome = fmt.Sprintf("forward: a subscriber counted, but the listener did not hand on the reply within %v", receiveTimeout)
		}
		if ctx.Err() == nil || last == "none" {
			// Not the deadline's own error: it would hide the last
			// outcome that says something.
			last = outcome
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%s: not within %v (%d forwards counted no subscriber; last outcome: %s)\n%s",
				what, forwardTimeout, undelivered, last, describe())
		}
	}
}

// drain reads what got holds now.
func drain(got <-chan envelope.Reply) {
	for {
		select {
		case <-got:
		default:
			return
		}
	}
}

// receiveTimeout bounds awaitReply.
const receiveTimeout = 5 * time.Second

// awaitReply reads got until the reply for id arrives (true), or for
// receiveTimeout at most, less when ctx ends first.
func awaitReply(ctx context.Context, got <-chan envelope.Reply, id string) bool {
	timer := time.NewTimer(receiveTimeout)
	defer timer.Stop()
	for {
		select {
		case rep := <-got:
			if rep.CorrelationID == id {
				return true
			}
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}
