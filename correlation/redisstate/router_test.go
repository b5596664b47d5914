package redisstate_test

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/correlation/redisstate"
	"github.com/syncgate/syncgate/internal/testenv"
)

func newRouter(t *testing.T) (*redisstate.Router, goredis.UniversalClient, redisstate.Config) {
	t.Helper()
	rdb, cfg := newClient(t)
	return redisstate.NewRouter(rdb, cfg), rdb, cfg
}

func TestRouterClaim(t *testing.T) {
	r, rdb, cfg := newRouter(t)
	ctx := t.Context()
	id := correlation.NewID()
	if _, err := r.Owner(ctx, id); err != redisstate.ErrNoOwner {
		t.Fatalf("Owner before Claim: %v, want ErrNoOwner", err)
	}
	if err := r.Claim(ctx, id, "a", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	wantTTL(t, rdb, redisstate.OwnerKey(cfg.Prefix, id), 30*time.Second)
	if node, err := r.Owner(ctx, id); err != nil || node != "a" {
		t.Fatalf("Owner = %q, %v; want a", node, err)
	}
	// Another node's release leaves the claim alone.
	if err := r.Release(ctx, id, "b"); err != nil {
		t.Fatal(err)
	}
	if node, err := r.Owner(ctx, id); err != nil || node != "a" {
		t.Fatalf("Owner after b's Release = %q, %v; want a", node, err)
	}
	if err := r.Release(ctx, id, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Owner(ctx, id); err != redisstate.ErrNoOwner {
		t.Fatalf("Owner after Release: %v, want ErrNoOwner", err)
	}

	t.Run("claim expires", func(t *testing.T) {
		if err := r.Claim(ctx, id, "a", 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, "claim expired", func() bool {
			_, err := r.Owner(ctx, id)
			return err == redisstate.ErrNoOwner
		})
	})
}

// listen listens for node and hands every reply to the returned channel.
// A test reads what its listener is sent: while the channel is full the
// listener's goroutine waits in its callback, and a waiting listener
// neither probes nor subscribes again after a failover. It waits no
// longer than the test, though: Close waits for that goroutine.
func listen(t *testing.T, r *redisstate.Router, ctx context.Context, node string) (*redisstate.Listener, <-chan envelope.Reply) {
	t.Helper()
	got := make(chan envelope.Reply, 16)
	stop := make(chan struct{})
	l, err := r.Listen(ctx, node, func(rep envelope.Reply) {
		select {
		case got <- rep:
		case <-stop:
		}
	})
	if err != nil {
		t.Fatalf("Listen(%s): %v", node, err)
	}
	t.Cleanup(func() {
		close(stop)
		closeWithin(t, "the listener of node "+node, l.Close)
	})
	return l, got
}

// closeTimeout bounds closing a listener or a lease at the end of a test.
const closeTimeout = 10 * time.Second

// closeWithin calls close, and fails t if it has not returned within
// closeTimeout (it is left running) instead of hanging the test binary.
func closeWithin(t *testing.T, what string, close func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- close() }()
	timer := time.NewTimer(closeTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.Errorf("closing %s: not done within %v", what, closeTimeout)
	}
}

func receive(t *testing.T, got <-chan envelope.Reply) envelope.Reply {
	t.Helper()
	select {
	case rep := <-got:
		return rep
	case <-time.After(10 * time.Second):
		t.Fatal("no reply within 10s")
	}
	return envelope.Reply{}
}

func TestRouterForward(t *testing.T) {
	r, rdb, cfg := newRouter(t)
	ctx := t.Context()
	// The delivery round trip (full and minimal replies, first Forward
	// after Listen) is correlationtest's, run on Redis in
	// conformance_test.go; this test keeps what only Redis has: junk on the
	// channel, and the subscription gone after Close.
	l, got := listen(t, r, ctx, "a")
	_, other := listen(t, r, ctx, "b")

	t.Run("garbage is counted and dropped", func(t *testing.T) {
		for _, junk := range []string{"", "not json", `{"v":1}`, `{"v":2,"id":"x"}`, `{"v":1,"id":"x","status":7}`, `[1,2]`, `{"v":1,"id":"x","body":"!!"}`} {
			if err := rdb.Publish(ctx, cfg.Prefix+"node:a", junk).Err(); err != nil {
				t.Fatal(err)
			}
		}
		after := reply(correlation.NewID())
		if delivered, err := r.Forward(ctx, "a", after); err != nil || !delivered {
			t.Fatalf("Forward = %v, %v", delivered, err)
		}
		// Messages on one channel arrive in order: once the good one is
		// here, all the garbage was seen.
		if rep := receive(t, got); rep.CorrelationID != after.CorrelationID {
			t.Fatalf("received %+v, want %s", rep, after.CorrelationID)
		}
		if n := l.Rejected(); n != 7 {
			t.Fatalf("Rejected() = %d, want 7", n)
		}
	})

	select {
	case rep := <-other:
		t.Fatalf("node b received %+v, forwarded to a", rep)
	default:
	}

	t.Run("closed listener gets nothing", func(t *testing.T) {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		// The server drops the subscription when it sees the connection
		// close, which may take a moment after Close returns.
		testenv.Eventually(t, 10*time.Second, "a's subscription gone", func() bool {
			n, err := rdb.PubSubNumSub(ctx, cfg.Prefix+"node:a").Result()
			return err == nil && n[cfg.Prefix+"node:a"] == 0
		})
		if delivered, err := r.Forward(ctx, "a", reply(correlation.NewID())); err != nil || delivered {
			t.Fatalf("Forward to a closed listener = %v, %v; want false", delivered, err)
		}
	})
}

// TestListenerReconnects kills the listener's connection on the server (not
// the shared server itself): the listener reconnects, resubscribes and
// receives again.
func TestListenerReconnects(t *testing.T) {
	_, cfg := newClient(t)
	opts, err := cfg.Options()
	if err != nil {
		t.Fatal(err)
	}
	opts.ClientName = "syncgate-test-" + randomHex(t)
	rdb := goredis.NewUniversalClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	r := redisstate.NewRouter(rdb, cfg)
	ctx := t.Context()
	_, got := listen(t, r, ctx, "a")

	list, err := rdb.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var subID string
	for line := range strings.SplitSeq(list, "\n") {
		fields := strings.Fields(line)
		if slices.Contains(fields, "name="+opts.ClientName) && slices.Contains(fields, "sub=1") {
			subID = strings.TrimPrefix(fields[0], "id=")
		}
	}
	if subID == "" {
		t.Fatalf("no subscriber connection named %s in CLIENT LIST:\n%s", opts.ClientName, list)
	}
	if err := rdb.Do(ctx, "CLIENT", "KILL", "ID", subID).Err(); err != nil {
		t.Fatalf("CLIENT KILL ID %s: %v", subID, err)
	}

	// Until the listener has resubscribed, PUBLISH reaches nobody.
	want := reply(correlation.NewID())
	testenv.Eventually(t, 10*time.Second, "listener resubscribed", func() bool {
		delivered, err := r.Forward(ctx, "a", want)
		return err == nil && delivered
	})
	if rep := receive(t, got); !reflect.DeepEqual(rep, want) {
		t.Fatalf("received %+v, want %+v", rep, want)
	}
}

func TestRouterClaimPending(t *testing.T) {
	r, rdb, cfg := newRouter(t)
	s := redisstate.NewStore(rdb, cfg)
	ctx := t.Context()
	id := correlation.NewID()
	if err := r.ClaimPending(ctx, id, "a", "", 30*time.Second, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if node, err := r.Owner(ctx, id); err != nil || node != "a" {
		t.Fatalf("Owner = %q, %v", node, err)
	}
	wantTTL(t, rdb, redisstate.OwnerKey(cfg.Prefix, id), 30*time.Second)
	wantTTL(t, rdb, redisstate.ResultKey(cfg.Prefix, id), 20*time.Second)
	if res, err := s.Get(ctx, id); err != nil || res.State != correlation.StatePending {
		t.Fatalf("Store.Get after ClaimPending = %+v, %v; want pending", res, err)
	}
	// The record is the Store's: Complete finds it, and a second
	// ClaimPending leaves the stored reply alone.
	if err := s.Complete(ctx, envelope.Reply{CorrelationID: id, Status: 200, Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := r.ClaimPending(ctx, id, "b", "", time.Second, time.Second); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Get(ctx, id); err != nil || res.State != correlation.StateDone || string(res.Reply.Body) != "x" {
		t.Fatalf("reply after a second ClaimPending = %+v, %v", res, err)
	}
}
