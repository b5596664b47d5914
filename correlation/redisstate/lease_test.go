package redisstate_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/correlation/redisstate"
	"github.com/syncgate/syncgate/internal/testenv"
)

func TestLeaseRefusesASecondLiveNode(t *testing.T) {
	r, rdb, cfg := newRouter(t)
	ctx := t.Context()
	a, err := r.Join(ctx, "a", time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	_, err = r.Join(ctx, "a", time.Second, 0)
	if !errors.Is(err, redisstate.ErrNodeTaken) || !strings.Contains(err.Error(), a.Token()) {
		t.Fatalf("second Join: %v, want ErrNodeTaken naming %s", err, a.Token())
	}
	// Waiting less than the holder keeps refreshing does not help either.
	start := time.Now()
	if _, err := r.Join(ctx, "a", time.Second, 1500*time.Millisecond); !errors.Is(err, redisstate.ErrNodeTaken) {
		t.Fatalf("Join with wait while a refreshes: %v, want ErrNodeTaken", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("Join with a 1.5s wait took %v", time.Since(start))
	}
	// Another id is free.
	b, err := r.Join(ctx, "b", time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(ctx, redisstate.LeaseKey(cfg.Prefix, "b")).Result(); n != 0 {
		t.Errorf("Close left the lease key")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a2, err := r.Join(ctx, "a", time.Second, 0)
	if err != nil {
		t.Fatalf("Join after Close: %v", err)
	}
	_ = a2.Close()
}

func TestLeaseOfADeadProcessLapses(t *testing.T) {
	r, rdb, cfg := newRouter(t)
	ctx := t.Context()
	// A process that died: its key, nobody refreshing it.
	if err := rdb.Set(ctx, redisstate.LeaseKey(cfg.Prefix, "a"), "dead-process", 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Join(ctx, "a", time.Second, 0); !errors.Is(err, redisstate.ErrNodeTaken) {
		t.Fatalf("Join without wait: %v, want ErrNodeTaken", err)
	}
	l, err := r.Join(ctx, "a", time.Second, 5*time.Second)
	if err != nil {
		t.Fatalf("Join waiting for the dead lease: %v", err)
	}
	defer l.Close()
	if v, _ := rdb.Get(ctx, redisstate.LeaseKey(cfg.Prefix, "a")).Result(); v != l.Token() {
		t.Fatalf("lease holds %q, want %q", v, l.Token())
	}
}

func TestLeaseRefreshes(t *testing.T) {
	r, rdb, cfg := newRouter(t)
	ctx := t.Context()
	key := redisstate.LeaseKey(cfg.Prefix, "a")
	l, err := r.Join(ctx, "a", 300*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Kept past several TTLs.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if v, _ := rdb.Get(ctx, key).Result(); v != l.Token() {
			t.Fatalf("lease lapsed while refreshed: %q", v)
		}
		time.Sleep(50 * time.Millisecond) // sampling, not synchronisation
	}
	// Gone (Redis restarted without persistence): taken again.
	if err := rdb.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "lease taken again", func() bool {
		v, _ := rdb.Get(ctx, key).Result()
		return v == l.Token()
	})
	// Taken by another process meanwhile: reported, not stolen back.
	if err := rdb.Set(ctx, key, "other", 0).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "lease reported lost", func() bool { return errors.Is(l.Err(), redisstate.ErrNodeTaken) })
	if v, _ := rdb.Get(ctx, key).Result(); v != "other" {
		t.Fatalf("lease stolen back: %q", v)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if v, _ := rdb.Get(ctx, key).Result(); v != "other" {
		t.Fatalf("Close deleted another process's lease: %q", v)
	}
}

func TestJoinRedisDown(t *testing.T) {
	rdb, cfg := deadClient(t)
	r := redisstate.NewRouter(rdb, cfg)
	if _, err := r.Join(t.Context(), "a", time.Second, time.Second); !errors.Is(err, redisstate.ErrUnavailable) {
		t.Fatalf("Join with Redis down: %v, want ErrUnavailable", err)
	}
}

// An advertised lease keeps its node among the members, also after the
// members are gone (Redis restarted without persistence).
func TestLeaseAdvertises(t *testing.T) {
	r, rdb, cfg := newRouter(t)
	ctx := t.Context()
	l, err := r.Join(ctx, "a", 300*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Advertise("syncgate.reply.a")
	testenv.Eventually(t, 5*time.Second, "a listed among the members", func() bool {
		m, _ := r.Members(ctx)
		return m["a"] == "syncgate.reply.a"
	})
	if err := rdb.Del(ctx, redisstate.MembersKey(cfg.Prefix), redisstate.LeaseKey(cfg.Prefix, "a")).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "a listed again after the members were lost", func() bool {
		m, _ := r.Members(ctx)
		return m["a"] == "syncgate.reply.a"
	})
}
