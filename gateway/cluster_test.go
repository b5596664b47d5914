package gateway_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
)

// Cluster mode, in process: two gateways ("a" and "b") sharing one
// correlation.MemoryRouter, one MemoryStore and one idempotency store, as
// nodes share Redis (correlation/redisstate passes the same port-level
// suite, correlation/correlationtest). The test plays the broker: it hands a
// request's reply to whichever node's DispatchReply it wants, as if that
// node had consumed it.

type clusterNode struct {
	*fixture
	name     string
	listener *correlation.MemoryListener
}

// newCluster returns nodes a and b; with up false their router and store
// fail every call (Redis down), and the nodes have no listeners.
func newCluster(t testing.TB, up bool) (a, b *clusterNode) {
	t.Helper()
	nodes := newClusterNodes(t, up, "a", "b")
	return nodes[0], nodes[1]
}

// newClusterNodes returns one node per name, sharing one cluster state.
func newClusterNodes(t testing.TB, up bool, names ...string) []*clusterNode {
	t.Helper()
	results := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
	mr := correlation.NewMemoryRouter(results)
	var (
		router gateway.Router = mr
		store  gateway.Store  = results
	)
	if !up {
		router, store = downRouter{}, downStore{}
	}
	idem := correlation.NewMemoryIdempotency(correlation.MemoryIdempotencyConfig{})
	node := func(name string) *clusterNode {
		pub := &recorder{msgs: make(chan brokers.Message, 16)}
		gw := gateway.New(gateway.Config{
			ReplyTo: "syncgate.reply." + name, Idempotency: idem,
			Cluster: &gateway.Cluster{Node: name, Router: router},
		}, pub, store)
		t.Cleanup(gw.Close)
		n := &clusterNode{fixture: &fixture{gw: gw, pub: pub}, name: name}
		if up {
			l, err := mr.Listen(context.Background(), name, func(rep envelope.Reply) { gw.AcceptForwarded(context.Background(), rep) })
			if err != nil {
				t.Fatal(err)
			}
			n.listener = l
			t.Cleanup(func() { _ = l.Close() })
		}
		return n
	}
	nodes := make([]*clusterNode, len(names))
	for i, name := range names {
		nodes[i] = node(name)
	}
	return nodes
}

// errDown is what the cluster state answers while it is unreachable.
var errDown = errors.New("cluster state unreachable")

// downRouter and downStore fail every call, as the Redis ones do while
// Redis is down. downStore bounds no room, like the Redis store.
type downRouter struct{}

func (downRouter) Claim(context.Context, string, string, time.Duration) error { return errDown }
func (downRouter) ClaimPending(context.Context, string, string, string, time.Duration, time.Duration) error {
	return errDown
}
func (downRouter) ForwardToOwner(context.Context, string, envelope.Reply) (string, bool, error) {
	return "", false, errDown
}

type downStore struct{}

func (downStore) Pending(context.Context, string, string, time.Duration) error { return errDown }
func (downStore) Complete(context.Context, envelope.Reply) error               { return errDown }
func (downStore) Get(context.Context, string) (correlation.Result, error) {
	return correlation.Result{}, errDown
}
func (downStore) Delete(context.Context, string) error         { return errDown }
func (downStore) Cancel(context.Context, string, string) error { return errDown }
func (downStore) Progress(context.Context, string, correlation.Progress) (int, error) {
	return 0, errDown
}
func (downStore) SetCallback(context.Context, string, correlation.Callback) error { return errDown }
func (downStore) Events(context.Context, string, int) (correlation.Result, error) {
	return correlation.Result{}, errDown
}

// dispatch hands the reply to m (body) to node n's reply consumer.
func (n *clusterNode) dispatch(t *testing.T, m brokers.Message, body string) gateway.ReplyOutcome {
	t.Helper()
	req, err := envelope.DecodeRequest(m)
	if err != nil {
		t.Fatalf("published request does not decode: %v", err)
	}
	out, err := n.gw.DispatchReply(t.Context(), envelope.Reply{
		CorrelationID: req.CorrelationID, Status: 200, ContentType: "text/plain", Body: []byte(body),
	}.Message())
	if err != nil {
		t.Fatalf("DispatchReply on %s: %v", n.name, err)
	}
	return out
}

func clusterRoute(mode gateway.Mode, wait time.Duration) *gateway.Route {
	return &gateway.Route{Name: "r", Destination: "svc", Mode: mode, Wait: wait, Timeout: 10 * time.Second}
}

func recv(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Do did not return in 10s")
		return result{}
	}
}

func TestClusterForwardsToTheWaitingNode(t *testing.T) {
	for _, mode := range []gateway.Mode{gateway.ModeSync, gateway.ModeAuto} {
		t.Run(string(mode), func(t *testing.T) {
			a, b := newCluster(t, true)
			res := a.do(t.Context(), clusterRoute(mode, 5*time.Second), gateway.Preferences{})
			m := <-a.pub.msgs
			if out := b.dispatch(t, m, "from b"); out != gateway.ReplyForwarded {
				t.Fatalf("outcome on b = %v, want forwarded", out)
			}
			r := recv(t, res)
			if r.err != nil || r.out.Accepted || string(r.out.Reply.Body) != "from b" {
				t.Fatalf("Do on a = %+v, %v; want the reply", r.out, r.err)
			}
			// Counted just after the hand-over: wait for it.
			deadline := time.Now().Add(5 * time.Second)
			for a.gw.ForwardCounts()[gateway.ReplyDelivered] != 1 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if got := a.gw.ForwardCounts()[gateway.ReplyDelivered]; got != 1 {
				t.Errorf("a took %d forwarded replies, want 1", got)
			}
			// A pollable request's reply was stored before it was forwarded.
			res2, err := a.gw.Result(t.Context(), r.out.ID, "")
			switch mode {
			case gateway.ModeAuto:
				if err != nil || res2.State != correlation.StateDone || string(res2.Reply.Body) != "from b" {
					t.Errorf("stored result = %+v, %v; want done", res2, err)
				}
				// A second copy is a duplicate, not a second delivery.
				if out := b.dispatch(t, m, "again"); out != gateway.ReplyDuplicate {
					t.Errorf("second copy on b: %v, want duplicate", out)
				}
			case gateway.ModeSync:
				if !errors.Is(err, gateway.ErrNotFound) {
					t.Errorf("sync route's reply stored: %+v, %v", res2, err)
				}
				// Nothing stored, but b remembers it forwarded one.
				if out := b.dispatch(t, m, "again"); out != gateway.ReplyDuplicate {
					t.Errorf("second copy on b: %v, want duplicate", out)
				}
			}
			if n := a.gw.Waiting(); n != 0 {
				t.Errorf("a still has %d waiting", n)
			}
		})
	}
}

// An invalid reply consumed by another node answers the waiting node's
// request with the 502 invalid-reply problem, forwarded like any reply, and
// stored for a poll on a pollable route.
func TestClusterInvalidReplyForwarded(t *testing.T) {
	for _, mode := range []gateway.Mode{gateway.ModeSync, gateway.ModeAuto} {
		t.Run(string(mode), func(t *testing.T) {
			a, b := newCluster(t, true)
			res := a.do(t.Context(), clusterRoute(mode, 5*time.Second), gateway.Preferences{})
			m := <-a.pub.msgs
			id := m.Headers[envelope.CorrelationID]
			out, err := b.gw.DispatchReply(t.Context(), brokers.Message{Key: id,
				Headers: map[string]string{envelope.CorrelationID: id, envelope.Status: "700"}})
			if err != nil || out != gateway.ReplyInvalid {
				t.Fatalf("outcome on b = %v, %v; want invalid", out, err)
			}
			r := recv(t, res)
			if r.err != nil || r.out.Accepted {
				t.Fatalf("Do on a = %+v, %v; want the 502", r.out, r.err)
			}
			wantInvalidReplyProblem(t, r.out.Reply, id)
			if mode == gateway.ModeAuto {
				got, err := a.gw.Result(t.Context(), id, "")
				if err != nil || got.State != correlation.StateDone {
					t.Fatalf("stored result = %+v, %v; want done", got, err)
				}
				wantInvalidReplyProblem(t, got.Reply, id)
			}
		})
	}
}

// A forward that never arrives (the owner's listener is down) is not the
// end: the reply was stored first, and the owner finds it when its wait
// ends, answering 200 instead of 202.
func TestClusterLostForwardIsReadFromTheStore(t *testing.T) {
	a, b := newCluster(t, true)
	if err := a.listener.Close(); err != nil {
		t.Fatal(err)
	}
	res := a.do(t.Context(), clusterRoute(gateway.ModeAuto, 500*time.Millisecond), gateway.Preferences{})
	m := <-a.pub.msgs
	if out := b.dispatch(t, m, "stored by b"); out != gateway.ReplyStored {
		t.Fatalf("outcome on b = %v, want stored (a is not listening)", out)
	}
	r := recv(t, res)
	if r.err != nil || r.out.Accepted || string(r.out.Reply.Body) != "stored by b" {
		t.Fatalf("Do on a = %+v, %v; want the stored reply", r.out, r.err)
	}
}

// The owner is gone for good: a sync route's reply has nowhere to go.
func TestClusterOwnerGone(t *testing.T) {
	a, b := newCluster(t, true)
	if err := a.listener.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	res := a.do(ctx, clusterRoute(gateway.ModeSync, 0), gateway.Preferences{})
	m := <-a.pub.msgs
	if out := b.dispatch(t, m, "late"); out != gateway.ReplyOrphan {
		t.Fatalf("outcome on b = %v, want orphan", out)
	}
	cancel()
	if r := recv(t, res); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Do = %+v, %v", r.out, r.err)
	}
	// An async request was never claimed: its reply is stored wherever it lands.
	res = a.do(t.Context(), clusterRoute(gateway.ModeAsync, 0), gateway.Preferences{})
	m = <-a.pub.msgs
	r := recv(t, res)
	if !r.out.Accepted {
		t.Fatalf("async Do = %+v, %v", r.out, r.err)
	}
	if out := b.dispatch(t, m, "for the poll"); out != gateway.ReplyStored {
		t.Fatalf("async reply on b = %v, want stored", out)
	}
	if got, err := a.gw.Result(t.Context(), r.out.ID, ""); err != nil || string(got.Reply.Body) != "for the poll" {
		t.Fatalf("poll on a = %+v, %v", got, err)
	}
}

// The shared state down (Redis, in production): a reply that comes back to
// the waiting node still works; one that needs the state is counted lost,
// not retried forever; 202s are refused.
func TestClusterStateDown(t *testing.T) {
	a, b := newCluster(t, false)

	res := a.do(t.Context(), clusterRoute(gateway.ModeAuto, 5*time.Second), gateway.Preferences{})
	m := <-a.pub.msgs
	if out := a.dispatch(t, m, "direct"); out != gateway.ReplyDelivered {
		t.Fatalf("direct reply: %v", out)
	}
	if r := recv(t, res); r.err != nil || string(r.out.Reply.Body) != "direct" {
		t.Fatalf("Do with the state down, direct reply = %+v, %v", r.out, r.err)
	}
	errs := a.gw.ClusterErrors()
	// One round trip claims and writes the pending record (ClaimPending).
	if errs["claim"] != 1 {
		t.Errorf("cluster errors = %v, want one claim", errs)
	}

	res = a.do(t.Context(), clusterRoute(gateway.ModeSync, 0), gateway.Preferences{})
	m = <-a.pub.msgs
	if out := b.dispatch(t, m, "misrouted"); out != gateway.ReplyLost {
		t.Fatalf("misrouted reply with the state down: %v, want lost", out)
	}
	// The owner lookup and the publish are one round trip (ForwardToOwner).
	if n := b.gw.ClusterErrors()["forward"]; n != 1 {
		t.Errorf("forward errors on b = %d, want 1", n)
	}
	// The waiter on a is still there; its own copy of the reply would do.
	if out := a.dispatch(t, m, "redelivered"); out != gateway.ReplyDelivered {
		t.Fatalf("reply on a: %v", out)
	}
	recv(t, res)

	res = a.do(t.Context(), clusterRoute(gateway.ModeAsync, 0), gateway.Preferences{})
	if r := recv(t, res); !errors.Is(r.err, gateway.ErrStore) {
		t.Fatalf("async Do with the state down = %+v, %v; want ErrStore", r.out, r.err)
	}
	// Polls, long polls and cancels answer 503 (ErrStore), not 500.
	id := correlation.NewID()
	if _, err := a.gw.Result(t.Context(), id, ""); !errors.Is(err, gateway.ErrStore) {
		t.Errorf("Result with the state down: %v, want ErrStore", err)
	}
	if _, err := a.gw.Await(t.Context(), id, "", time.Second); !errors.Is(err, gateway.ErrStore) {
		t.Errorf("Await with the state down: %v, want ErrStore", err)
	}
	if err := a.gw.Cancel(t.Context(), id, ""); !errors.Is(err, gateway.ErrStore) {
		t.Errorf("Cancel with the state down: %v, want ErrStore", err)
	}
}

// A long poll on one node sees a reply another node stored without waiting
// out its whole wait.
func TestClusterLongPollSeesAnotherNodesReply(t *testing.T) {
	a, b := newCluster(t, true)
	r := recv(t, a.do(t.Context(), clusterRoute(gateway.ModeAsync, 0), gateway.Preferences{}))
	if !r.out.Accepted {
		t.Fatalf("async Do = %+v, %v", r.out, r.err)
	}
	m := <-a.pub.msgs
	done := a.await(context.Background(), r.out.ID, 20*time.Second)
	if out := b.dispatch(t, m, "stored on b"); out != gateway.ReplyStored {
		t.Fatalf("reply on b = %v, want stored", out)
	}
	select {
	case p := <-done:
		if p.err != nil || p.res.State != correlation.StateDone || string(p.res.Reply.Body) != "stored on b" {
			t.Fatalf("Await on a = %+v, %v", p.res, p.err)
		}
		if p.elapsed > 5*time.Second {
			t.Errorf("Await took %v; rechecks are at most 1s apart", p.elapsed)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Await on a did not see the reply b stored")
	}
}
