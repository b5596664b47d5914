package redistest_test

import (
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/testenv"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// The cluster serves keys of every slot and survives a coordinated
// failover with the written key intact.
func TestClusterFailoverKeepsKeys(t *testing.T) {
	c := redistest.Cluster(t)
	rdb := c.Client(t)
	ctx := t.Context()
	if err := rdb.Set(ctx, "redistest:{k}", "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	oldM, newM, err := c.Failover(ctx, "redistest:{k}")
	if err != nil {
		t.Fatal(err)
	}
	if oldM == newM {
		t.Fatalf("failover kept master %s", oldM)
	}
	if v, err := rdb.Get(ctx, "redistest:{k}").Result(); err != nil || v != "v" {
		t.Fatalf("after failover %s → %s: GET = %q, %v", oldM, newM, v, err)
	}
}

// A failover client follows SENTINEL FAILOVER to the new master.
func TestSentinelFailoverFollowed(t *testing.T) {
	s := redistest.Sentinel(t)
	rdb := goredis.NewFailoverClient(&goredis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := t.Context()
	if err := rdb.Set(ctx, "redistest:k", "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Failover(ctx); err != nil {
		t.Fatal(err)
	}
	// The client may see an error while it switches; then the commands go
	// to the new master, which has the key.
	testenv.Eventually(t, 10*time.Second, "GET on the new master", func() bool {
		v, err := rdb.Get(ctx, "redistest:k").Result()
		return err == nil && v == "v"
	})
	if err := rdb.Set(ctx, "redistest:k2", "v", time.Minute).Err(); err != nil {
		t.Fatalf("write after failover: %v", err)
	}
}
