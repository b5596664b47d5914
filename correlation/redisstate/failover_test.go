package redisstate_test

import (
	"context"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

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
func TestFailover(t *testing.T) {
	// The plain Sentinel set and Redis Cluster: the secured deployments
	// after them have no failover helper of their own here.
	for _, d := range deployments[1:3] {
		t.Run(d.name, func(t *testing.T) {
			rdb, cfg := newClientOn(t, d)
			r := redisstate.NewRouter(rdb, cfg)
			store := redisstate.NewStore(rdb, cfg)
			ctx := t.Context()
			lease, err := r.Join(ctx, "a", 900*time.Millisecond, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = lease.Close() })
			_, got := listen(t, r, ctx, "a")
			before := reply(correlation.NewID())
			if err := r.ClaimPending(ctx, before.CorrelationID, "a", "", time.Minute, time.Minute); err != nil {
				t.Fatal(err)
			}

			fctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			var oldM, newM string
			if d.name == redisstate.ModeCluster {
				oldM, newM, err = redistest.Cluster(t).Failover(fctx, cfg.Prefix+"node:a")
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
			if owner, err := r.Owner(ctx, before.CorrelationID); err != nil || owner != "a" {
				t.Fatalf("Owner after the failover = %q, %v", owner, err)
			}
			// The client may fail commands while it finds the new master;
			// the forward then reaches the resubscribed listener.
			testenv.Eventually(t, 20*time.Second, "a forward delivered after the failover", func() bool {
				rep := reply(correlation.NewID())
				if err := r.Claim(ctx, rep.CorrelationID, "a", time.Minute); err != nil {
					return false
				}
				_, delivered, err := r.ForwardToOwner(ctx, "b", rep)
				if err != nil || !delivered {
					return false
				}
				receive(t, got)
				return true
			})
			if err := store.Complete(ctx, before); err != nil {
				t.Fatalf("Complete after the failover: %v", err)
			}
			if res, err := store.Get(ctx, before.CorrelationID); err != nil || res.State != correlation.StateDone {
				t.Fatalf("Get after the failover = %+v, %v", res, err)
			}
			// The lease refreshed through the switch: still held, by us.
			testenv.Eventually(t, 5*time.Second, "lease held after the failover", func() bool {
				live, err := r.Live(ctx, "a")
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
	kctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	killed, promoted, restart, err := redistest.Cluster(t).KillMaster(kctx, cfg.Prefix+"node:a")
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
	testenv.Eventually(t, 20*time.Second, "a forward delivered after the master died", func() bool {
		rep := reply(correlation.NewID())
		if err := r.Claim(ctx, rep.CorrelationID, "a", time.Minute); err != nil {
			return false
		}
		if _, delivered, err := r.ForwardToOwner(ctx, "b", rep); err != nil || !delivered {
			return false
		}
		receive(t, got)
		return true
	})
	t.Logf("forwarding back %v after the promotion was seen", time.Since(promotedAt).Round(time.Millisecond))
}
