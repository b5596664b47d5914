package correlationtest

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/internal/testenv"
)

// Router is what the suite calls of an implementation's router.
type Router interface {
	Claim(ctx context.Context, id, node string, ttl time.Duration) error
	ClaimPending(ctx context.Context, id, node, principal string, ttl, pendingTTL time.Duration) error
	Owner(ctx context.Context, id string) (string, error)
	Release(ctx context.Context, id, node string) error
	Forward(ctx context.Context, node string, rep envelope.Reply) (bool, error)
	ForwardToOwner(ctx context.Context, from string, rep envelope.Reply) (string, bool, error)

	Register(ctx context.Context, node, replyTo string) error
	Members(ctx context.Context) (map[string]string, error)
	Forget(ctx context.Context, node string) error
	Live(ctx context.Context, node string) (bool, error)
	Adopt(ctx context.Context, node, by string, ttl time.Duration) (bool, error)
	AdoptedBy(ctx context.Context, node string) (string, error)
	Unadopt(ctx context.Context, node, by string) error
}

// Listener is a node's subscription to its forwarded replies.
type Listener interface {
	Close() error
	Done() <-chan struct{}
}

// Lease holds a node id.
type Lease interface {
	Advertise(replyTo string)
	Err() error
	Token() string
	Close() error
}

// Store is the results store that ClaimPending writes to.
type Store interface {
	Pending(ctx context.Context, id, principal string, ttl time.Duration) error
	Get(ctx context.Context, id string) (correlation.Result, error)
	Complete(ctx context.Context, rep envelope.Reply) error
	Cancel(ctx context.Context, id, principal string) error
	Progress(ctx context.Context, id string, p correlation.Progress) (int, error)
	Events(ctx context.Context, id string, after int) (correlation.Result, error)
	SetCallback(ctx context.Context, id string, cb correlation.Callback) error
	SetParts(ctx context.Context, parent string, g correlation.Gathering) error
	ClaimDeliveries(ctx context.Context, now time.Time, n int, lease time.Duration) ([]string, error)
	RecordAttempt(ctx context.Context, id string, a correlation.Attempt, state correlation.DeliveryState, next time.Time) error
}

// Cluster is one implementation under test. Listen and Join wrap the
// implementation's own methods, whose concrete return types differ.
type Cluster struct {
	Router Router
	Store  Store
	Listen func(ctx context.Context, node string, fn func(envelope.Reply)) (Listener, error)
	Join   func(ctx context.Context, node string, ttl, wait time.Duration) (Lease, error)
}

// Setup returns a fresh, empty cluster; it registers its own clean-up.
type Setup func(t *testing.T) Cluster

// Run runs every property of the suite (see the package doc) as a subtest.
func Run(t *testing.T, setup Setup) {
	tests := []struct {
		name string
		test func(*testing.T, Cluster)
	}{
		{"Claim", testClaim},
		{"ClaimPending", testClaimPending},
		{"Principal", testPrincipal},
		{"Progress", testProgress},
		{"Callback", testCallback},
		{"Parts", func(t *testing.T, c Cluster) { Parts(t, c.Store) }},
		{"Forward", testForward},
		{"ForwardToOwner", testForwardToOwner},
		{"ListenerStopsWithContext", testListenerStops},
		{"Lease", testLease},
		{"LeaseAdvertises", testLeaseAdvertises},
		{"MembersAndAdoption", testMembersAndAdoption},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, setup(t)) })
	}
}

const timeout = 10 * time.Second

// FullReply sets every field of a reply, with a body that is not UTF-8, so
// that a round trip that is not exact shows.
func FullReply(id string) envelope.Reply {
	return envelope.Reply{
		CorrelationID: id, Status: 418, ContentType: "application/octet-stream",
		Header:      map[string]string{"x-a": "1", "cache-control": "no-store"},
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceState: "k=v",
		Body: []byte{0, 0xff, 0xfe, '\n', 'x', 0},
	}
}

func testClaim(t *testing.T, c Cluster) {
	r, ctx := c.Router, t.Context()
	id := correlation.NewID()
	if _, err := r.Owner(ctx, id); !errors.Is(err, correlation.ErrNoOwner) {
		t.Fatalf("Owner before Claim: %v, want ErrNoOwner", err)
	}
	if err := r.Claim(ctx, id, "a", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if node, err := r.Owner(ctx, id); err != nil || node != "a" {
		t.Fatalf("Owner = %q, %v; want a", node, err)
	}
	// A later claim replaces an earlier one.
	if err := r.Claim(ctx, id, "b", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if node, err := r.Owner(ctx, id); err != nil || node != "b" {
		t.Fatalf("Owner after b's Claim = %q, %v; want b", node, err)
	}
	if err := r.Claim(ctx, id, "a", 30*time.Second); err != nil {
		t.Fatal(err)
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
	if _, err := r.Owner(ctx, id); !errors.Is(err, correlation.ErrNoOwner) {
		t.Fatalf("Owner after Release: %v, want ErrNoOwner", err)
	}
	// A claim lapses after its TTL.
	if err := r.Claim(ctx, id, "a", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, timeout, "claim expired", func() bool {
		_, err := r.Owner(ctx, id)
		return errors.Is(err, correlation.ErrNoOwner)
	})
}

func testClaimPending(t *testing.T, c Cluster) {
	r, s, ctx := c.Router, c.Store, t.Context()
	id := correlation.NewID()
	if err := r.ClaimPending(ctx, id, "a", "", 30*time.Second, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if node, err := r.Owner(ctx, id); err != nil || node != "a" {
		t.Fatalf("Owner = %q, %v", node, err)
	}
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
	if node, err := r.Owner(ctx, id); err != nil || node != "b" {
		t.Fatalf("Owner after b's ClaimPending = %q, %v", node, err)
	}
}

func testPrincipal(t *testing.T, c Cluster) {
	r, s, ctx := c.Router, c.Store, t.Context()
	principal := func(id, want string) {
		t.Helper()
		res, err := s.Get(ctx, id)
		if err != nil || res.Principal != want {
			t.Fatalf("Get(%s) = %+v, %v; want principal %q", id, res, err, want)
		}
	}
	// Pending, ClaimPending and Complete keep who made the request,
	// whatever bytes its name holds.
	for _, p := range []string{"", "alice", "a:b\x00c ü"} {
		id := correlation.NewID()
		if err := s.Pending(ctx, id, p, time.Minute); err != nil {
			t.Fatal(err)
		}
		principal(id, p)
		if err := s.Complete(ctx, FullReply(id)); err != nil {
			t.Fatal(err)
		}
		principal(id, p)
		claimed := correlation.NewID()
		if err := r.ClaimPending(ctx, claimed, "a", p, time.Minute, time.Minute); err != nil {
			t.Fatal(err)
		}
		principal(claimed, p)
	}
	// A second Pending of another principal leaves the record, and its
	// principal, alone.
	id := correlation.NewID()
	if err := s.Pending(ctx, id, "alice", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Pending(ctx, id, "bob", time.Minute); err != nil {
		t.Fatal(err)
	}
	principal(id, "alice")
	// Only the request's principal cancels it: anybody else, anonymous
	// included, finds no such request, and the record stays pending.
	for _, other := range []string{"bob", "", "Alice", "alice "} {
		if err := s.Cancel(ctx, id, other); !errors.Is(err, correlation.ErrNotFound) {
			t.Fatalf("Cancel by %q = %v, want ErrNotFound", other, err)
		}
	}
	if res, err := s.Get(ctx, id); err != nil || res.State != correlation.StatePending {
		t.Fatalf("after refused cancels: %+v, %v; want pending", res, err)
	}
	if err := s.Cancel(ctx, id, "alice"); err != nil {
		t.Fatalf("Cancel by its principal: %v", err)
	}
	if res, err := s.Get(ctx, id); err != nil || res.State != correlation.StateCancelled || res.Principal != "alice" {
		t.Fatalf("after Cancel: %+v, %v; want cancelled, alice's", res, err)
	}
	// An anonymous request is anybody's, as before callers had
	// identities (correlation.Result.VisibleTo).
	for _, who := range []string{"alice", ""} {
		anon := correlation.NewID()
		if err := s.Pending(ctx, anon, "", time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := s.Cancel(ctx, anon, who); err != nil {
			t.Fatalf("Cancel of an anonymous request by %q: %v", who, err)
		}
	}
}

func listen(t *testing.T, c Cluster, ctx context.Context, node string) (Listener, <-chan envelope.Reply) {
	t.Helper()
	got := make(chan envelope.Reply, 16)
	l, err := c.Listen(ctx, node, func(rep envelope.Reply) { got <- rep })
	if err != nil {
		t.Fatalf("Listen(%s): %v", node, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l, got
}

func receive(t *testing.T, got <-chan envelope.Reply) envelope.Reply {
	t.Helper()
	select {
	case rep := <-got:
		return rep
	case <-time.After(timeout):
		t.Fatalf("no reply within %v", timeout)
	}
	return envelope.Reply{}
}

func testForward(t *testing.T, c Cluster) {
	r, ctx := c.Router, t.Context()
	if delivered, err := r.Forward(ctx, "nobody", FullReply(correlation.NewID())); err != nil || delivered {
		t.Fatalf("Forward to a node with no listener = %v, %v; want false, nil", delivered, err)
	}
	if _, err := r.Forward(ctx, "nobody", envelope.Reply{}); err == nil {
		t.Fatal("Forward of a reply without correlation id: no error")
	}

	l, got := listen(t, c, ctx, "a")
	_, other := listen(t, c, ctx, "b")
	want := FullReply(correlation.NewID())
	// Listen returned: the first Forward must be delivered, with no retry.
	if delivered, err := r.Forward(ctx, "a", want); err != nil || !delivered {
		t.Fatalf("Forward = %v, %v; want delivered", delivered, err)
	}
	if rep := receive(t, got); !reflect.DeepEqual(rep, want) {
		t.Fatalf("received\n%+v\nwant\n%+v", rep, want)
	}
	minimal := envelope.Reply{CorrelationID: correlation.NewID()}
	if delivered, err := r.Forward(ctx, "a", minimal); err != nil || !delivered {
		t.Fatalf("Forward = %v, %v; want delivered", delivered, err)
	}
	if rep := receive(t, got); !reflect.DeepEqual(rep, minimal) {
		t.Fatalf("received %+v, want %+v", rep, minimal)
	}
	select {
	case rep := <-other:
		t.Fatalf("node b received %+v, forwarded to a", rep)
	default:
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// A server may drop the subscription a moment after Close returns.
	testenv.Eventually(t, timeout, "a closed listener gets nothing", func() bool {
		delivered, err := r.Forward(ctx, "a", envelope.Reply{CorrelationID: correlation.NewID()})
		return err == nil && !delivered
	})
}

func testForwardToOwner(t *testing.T, c Cluster) {
	r, ctx := c.Router, t.Context()
	id := correlation.NewID()
	rep := envelope.Reply{CorrelationID: id, Status: 200, Body: []byte("fwd")}
	if _, _, err := r.ForwardToOwner(ctx, "b", rep); !errors.Is(err, correlation.ErrNoOwner) {
		t.Fatalf("unclaimed: %v, want ErrNoOwner", err)
	}
	if err := r.Claim(ctx, id, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	// Claimed by a, nobody listening: owner known, not delivered.
	if owner, delivered, err := r.ForwardToOwner(ctx, "b", rep); err != nil || owner != "a" || delivered {
		t.Fatalf("owner not listening: %q %v %v", owner, delivered, err)
	}
	_, got := listen(t, c, ctx, "a")
	if owner, delivered, err := r.ForwardToOwner(ctx, "b", rep); err != nil || owner != "a" || !delivered {
		t.Fatalf("owner listening: %q %v %v", owner, delivered, err)
	}
	if g := receive(t, got); !reflect.DeepEqual(g, rep) {
		t.Errorf("received %+v, want %+v", g, rep)
	}
	// From the owner itself: nothing is published. A marker forwarded
	// after it arrives first, so the absence needs no sleep.
	if owner, delivered, err := r.ForwardToOwner(ctx, "a", rep); err != nil || owner != "a" || delivered {
		t.Fatalf("from the owner: %q %v %v", owner, delivered, err)
	}
	marker := envelope.Reply{CorrelationID: correlation.NewID()}
	if delivered, err := r.Forward(ctx, "a", marker); err != nil || !delivered {
		t.Fatalf("marker: %v %v", delivered, err)
	}
	if g := receive(t, got); g.CorrelationID != marker.CorrelationID {
		t.Fatalf("a forward to itself was published: %+v", g)
	}
}

func testListenerStops(t *testing.T, c Cluster) {
	ctx, cancel := context.WithCancel(t.Context())
	l, _ := listen(t, c, ctx, "a")
	cancel()
	select {
	case <-l.Done():
	case <-time.After(timeout):
		t.Fatalf("listener still running %v after its context ended", timeout)
	}
}

func testLease(t *testing.T, c Cluster) {
	ctx := t.Context()
	a, err := c.Join(ctx, "a", time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Err(); err != nil {
		t.Fatalf("Err of a held lease: %v", err)
	}
	_, err = c.Join(ctx, "a", time.Second, 0)
	if !errors.Is(err, correlation.ErrNodeTaken) || !strings.Contains(err.Error(), a.Token()) {
		t.Fatalf("second Join: %v, want ErrNodeTaken naming %s", err, a.Token())
	}
	// Waiting less than the holder keeps refreshing does not help either.
	start := time.Now()
	if _, err := c.Join(ctx, "a", time.Second, 1500*time.Millisecond); !errors.Is(err, correlation.ErrNodeTaken) {
		t.Fatalf("Join with wait while a refreshes: %v, want ErrNodeTaken", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("Join with a 1.5s wait took %v", time.Since(start))
	}
	// Kept past its TTL while refreshed.
	if _, err := c.Join(ctx, "a", time.Second, 0); !errors.Is(err, correlation.ErrNodeTaken) {
		t.Fatalf("Join after 1.5s of refreshes: %v, want ErrNodeTaken", err)
	}
	// Another id is free.
	b, err := c.Join(ctx, "b", time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	if live, err := c.Router.Live(ctx, "b"); err != nil || !live {
		t.Fatalf("Live(b) while held = %v, %v", live, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if live, err := c.Router.Live(ctx, "b"); err != nil || live {
		t.Fatalf("Live(b) after Close = %v, %v", live, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a2, err := c.Join(ctx, "a", time.Second, 0)
	if err != nil {
		t.Fatalf("Join after Close: %v", err)
	}
	_ = a2.Close()
}

func testLeaseAdvertises(t *testing.T, c Cluster) {
	ctx := t.Context()
	l, err := c.Join(ctx, "a", 300*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Advertise("syncgate.reply.a")
	testenv.Eventually(t, timeout, "a listed among the members", func() bool {
		m, _ := c.Router.Members(ctx)
		return m["a"] == "syncgate.reply.a"
	})
	if err := c.Router.Forget(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, timeout, "a listed again after it was forgotten", func() bool {
		m, _ := c.Router.Members(ctx)
		return m["a"] == "syncgate.reply.a"
	})
}

func testMembersAndAdoption(t *testing.T, c Cluster) {
	r, ctx := c.Router, t.Context()
	if err := r.Register(ctx, "a", "syncgate.reply.a"); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(ctx, "b", "syncgate.reply.b"); err != nil {
		t.Fatal(err)
	}
	m, err := r.Members(ctx)
	if err != nil || len(m) != 2 || m["a"] != "syncgate.reply.a" {
		t.Fatalf("Members = %v, %v", m, err)
	}
	if live, err := r.Live(ctx, "a"); err != nil || live {
		t.Fatalf("Live(a) without a lease = %v, %v", live, err)
	}
	l, err := c.Join(ctx, "a", time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	if live, err := r.Live(ctx, "a"); err != nil || !live {
		t.Fatalf("Live(a) with a lease = %v, %v", live, err)
	}
	_ = l.Close()
	if by, err := r.AdoptedBy(ctx, "a"); err != nil || by != "" {
		t.Fatalf("AdoptedBy before any adoption = %q, %v", by, err)
	}
	// One adopter at a time; the holder refreshes, the other is refused.
	if ok, err := r.Adopt(ctx, "a", "b", time.Second); err != nil || !ok {
		t.Fatalf("b adopts a: %v, %v", ok, err)
	}
	if ok, err := r.Adopt(ctx, "a", "c", time.Second); err != nil || ok {
		t.Fatalf("c adopts a too: %v, %v", ok, err)
	}
	if ok, err := r.Adopt(ctx, "a", "b", time.Second); err != nil || !ok {
		t.Fatalf("b refreshes: %v, %v", ok, err)
	}
	if by, err := r.AdoptedBy(ctx, "a"); err != nil || by != "b" {
		t.Fatalf("AdoptedBy = %q, %v; want b", by, err)
	}
	if err := r.Unadopt(ctx, "a", "c"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := r.Adopt(ctx, "a", "c", time.Second); ok {
		t.Fatal("c's Unadopt released b's adoption")
	}
	if err := r.Unadopt(ctx, "a", "b"); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.Adopt(ctx, "a", "c", time.Second); err != nil || !ok {
		t.Fatalf("c adopts after b let go: %v, %v", ok, err)
	}
	// An adoption nobody refreshes lapses.
	if ok, err := r.Adopt(ctx, "x", "c", 100*time.Millisecond); err != nil || !ok {
		t.Fatalf("c adopts x: %v, %v", ok, err)
	}
	testenv.Eventually(t, timeout, "c's adoption of x lapsed", func() bool {
		by, err := r.AdoptedBy(ctx, "x")
		return err == nil && by == ""
	})
	if err := r.Forget(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if m, _ := r.Members(ctx); len(m) != 1 || m["b"] == "" {
		t.Fatalf("Members after Forget(a) = %v", m)
	}
}

// testProgress: progress messages of a pending request are numbered from
// 1, kept byte-exact up to MaxProgressKept (the latest), read by Get (the
// latest only) and by Events (those after a sequence number), and kept
// with the reply; a request that is unknown, done or cancelled refuses
// them.
func testProgress(t *testing.T, c Cluster) {
	ctx := t.Context()
	id := correlation.NewID()
	if _, err := c.Store.Progress(ctx, id, correlation.Progress{Body: []byte("x")}); !errors.Is(err, correlation.ErrNotFound) {
		t.Fatalf("progress of an unknown id: %v, want ErrNotFound", err)
	}
	if err := c.Store.Pending(ctx, id, "", time.Minute); err != nil {
		t.Fatal(err)
	}
	res, err := c.Store.Get(ctx, id)
	if err != nil || res.Seq != 0 || len(res.Progress) != 0 {
		t.Fatalf("a fresh record: %+v, %v; want no progress", res, err)
	}
	total := correlation.MaxProgressKept + 3
	for i := 1; i <= total; i++ {
		body := []byte{byte(i), 0, 0xff, '\n', 'x'}
		n, err := c.Store.Progress(ctx, id, correlation.Progress{ContentType: "application/octet-stream", Body: body})
		if err != nil || n != i {
			t.Fatalf("progress %d: seq %d, %v", i, n, err)
		}
	}
	res, err = c.Store.Get(ctx, id)
	if err != nil || res.State != correlation.StatePending || res.Seq != total || len(res.Progress) != 1 ||
		res.Progress[0].Seq != total || res.Progress[0].Body[0] != byte(total) {
		t.Fatalf("Get after %d progress messages: %+v, %v; want the latest only", total, res, err)
	}
	check := func(after, first int) {
		t.Helper()
		res, err := c.Store.Events(ctx, id, after)
		if err != nil {
			t.Fatalf("Events(%d): %v", after, err)
		}
		if len(res.Progress) != total-first+1 {
			t.Fatalf("Events(%d): %d progress messages, want %d..%d", after, len(res.Progress), first, total)
		}
		for i, p := range res.Progress {
			want := []byte{byte(first + i), 0, 0xff, '\n', 'x'}
			if p.Seq != first+i || string(p.Body) != string(want) || p.ContentType != "application/octet-stream" {
				t.Fatalf("Events(%d)[%d] = %+v, want seq %d body %q", after, i, p, first+i, want)
			}
		}
	}
	check(0, total-correlation.MaxProgressKept+1) // the oldest are gone
	check(total-2, total-1)
	check(total, total+1) // none
	if err := c.Store.Complete(ctx, FullReply(id)); err != nil {
		t.Fatal(err)
	}
	check(total-1, total) // kept with the reply
	if _, err := c.Store.Progress(ctx, id, correlation.Progress{Body: []byte("late")}); !errors.Is(err, correlation.ErrCompleted) {
		t.Errorf("progress after the reply: %v, want ErrCompleted", err)
	}
	if res, _ := c.Store.Events(ctx, id, total); res.State != correlation.StateDone || !reflect.DeepEqual(res.Reply, FullReply(id)) {
		t.Errorf("Events of a done record: %+v", res)
	}
	cancelled := correlation.NewID()
	if err := c.Store.Pending(ctx, cancelled, "", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store.Progress(ctx, cancelled, correlation.Progress{}); err != nil {
		t.Fatalf("an empty progress message: %v", err)
	}
	if err := c.Store.Cancel(ctx, cancelled, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store.Progress(ctx, cancelled, correlation.Progress{Body: []byte("late")}); !errors.Is(err, correlation.ErrCancelled) {
		t.Errorf("progress after a cancel: %v, want ErrCancelled", err)
	}
}

// testCallback: a pending request's callback is queued when its reply is
// stored, claimed by one worker at a time (leased), rescheduled or ended
// by RecordAttempt, and its attempts (the latest MaxAttemptsKept) read
// with the record; a request that has ended takes no callback.
func testCallback(t *testing.T, c Cluster) {
	ctx := t.Context()
	id := correlation.NewID()
	cb := correlation.Callback{URL: "https://hooks.example/done", Route: "orders", Until: time.Now().Add(time.Hour).Truncate(time.Millisecond)}
	if err := c.Store.SetCallback(ctx, id, cb); !errors.Is(err, correlation.ErrNotFound) {
		t.Fatalf("SetCallback of an unknown id: %v, want ErrNotFound", err)
	}
	if err := c.Store.Pending(ctx, id, "", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := c.Store.SetCallback(ctx, id, cb); err != nil {
		t.Fatal(err)
	}
	res, err := c.Store.Get(ctx, id)
	if err != nil || res.Delivery == nil || res.Delivery.Callback != cb || res.Delivery.State != correlation.DeliveryWaiting {
		t.Fatalf("Get after SetCallback: %+v, %v", res.Delivery, err)
	}
	now := time.Now()
	claim := func(at time.Time, want ...string) {
		t.Helper()
		ids, err := c.Store.ClaimDeliveries(ctx, at, 10, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ids, want) && !(len(ids) == 0 && len(want) == 0) {
			t.Fatalf("ClaimDeliveries(%v) = %v, want %v", at.Sub(now), ids, want)
		}
	}
	claim(now.Add(30 * time.Second)) // not due before its reply, within its record's life
	if err := c.Store.Complete(ctx, FullReply(id)); err != nil {
		t.Fatal(err)
	}
	if res, _ := c.Store.Get(ctx, id); res.Delivery == nil || res.Delivery.State != correlation.DeliveryPending {
		t.Fatalf("after Complete: %+v, want pending", res.Delivery)
	}
	now = time.Now()
	claim(now, id)
	claim(now)                        // leased
	claim(now.Add(2*time.Second), id) // the lease ran out: a worker died
	next := now.Add(10 * time.Second)
	if err := c.Store.RecordAttempt(ctx, id, correlation.Attempt{At: now.Truncate(time.Millisecond), Status: 500}, correlation.DeliveryPending, next); err != nil {
		t.Fatal(err)
	}
	claim(now.Add(5 * time.Second)) // rescheduled later
	claim(next, id)
	for i := range correlation.MaxAttemptsKept + 1 {
		state := correlation.DeliveryPending
		if i == correlation.MaxAttemptsKept {
			state = correlation.DeliveryDelivered
		}
		a := correlation.Attempt{At: now.Add(time.Duration(i) * time.Second).Truncate(time.Millisecond), Status: 502, Error: "bad gateway"}
		if state == correlation.DeliveryDelivered {
			a = correlation.Attempt{At: a.At, Status: 204}
		}
		if err := c.Store.RecordAttempt(ctx, id, a, state, next); err != nil {
			t.Fatal(err)
		}
	}
	claim(now.Add(time.Hour)) // delivered: off the queue
	res, err = c.Store.Get(ctx, id)
	if err != nil || res.Delivery == nil {
		t.Fatalf("Get after delivery: %+v, %v", res, err)
	}
	d := res.Delivery
	if d.State != correlation.DeliveryDelivered || d.Count != correlation.MaxAttemptsKept+2 || len(d.Attempts) != correlation.MaxAttemptsKept ||
		d.Attempts[len(d.Attempts)-1].Status != 204 || d.Attempts[0].Status != 502 || d.Attempts[0].Error != "bad gateway" ||
		!d.Attempts[len(d.Attempts)-1].At.Equal(now.Add(time.Duration(correlation.MaxAttemptsKept)*time.Second).Truncate(time.Millisecond)) {
		t.Fatalf("delivery after %d attempts: %+v", correlation.MaxAttemptsKept+2, d)
	}

	done := correlation.NewID()
	if err := c.Store.Pending(ctx, done, "", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := c.Store.Complete(ctx, FullReply(done)); err != nil {
		t.Fatal(err)
	}
	if err := c.Store.SetCallback(ctx, done, cb); !errors.Is(err, correlation.ErrCompleted) {
		t.Errorf("SetCallback after the reply: %v, want ErrCompleted", err)
	}
	if res, _ := c.Store.Get(ctx, done); res.Delivery != nil {
		t.Errorf("a request without callback has a delivery: %+v", res.Delivery)
	}
	if err := c.Store.RecordAttempt(ctx, correlation.NewID(), correlation.Attempt{}, correlation.DeliveryFailed, time.Time{}); !errors.Is(err, correlation.ErrNotFound) {
		t.Errorf("RecordAttempt of an unknown id: %v, want ErrNotFound", err)
	}
}

// PartsStore is a store with scatter-gather links (correlation.MemoryStore,
// redisstate.Store).
type PartsStore interface {
	Pending(ctx context.Context, id, principal string, ttl time.Duration) error
	Get(ctx context.Context, id string) (correlation.Result, error)
	Complete(ctx context.Context, rep envelope.Reply) error
	Cancel(ctx context.Context, id, principal string) error
	SetParts(ctx context.Context, parent string, g correlation.Gathering) error
}

// Parts checks that s links a scatter-gather request with its parts: the
// parent lists its parts in order, each part with a record names its
// parent, the links survive the part's reply, and an unknown or ended
// parent refuses them.
func Parts(t *testing.T, s PartsStore) {
	ctx := t.Context()
	parent := correlation.NewID()
	parts := []correlation.Part{
		{Name: "user", Destination: "users.register", ID: correlation.NewID()},
		{Name: "promo", Destination: "promo.apply", ID: correlation.NewID(), Deadline: time.Now().Add(time.Minute).Truncate(time.Millisecond)},
		{Name: "unwritten", Destination: "stock.reserve", ID: correlation.NewID()},
	}
	g := correlation.Gathering{Route: "register", Rule: "quorum", Quorum: 2, Parts: parts}
	if err := s.SetParts(ctx, parent, g); !errors.Is(err, correlation.ErrNotFound) {
		t.Fatalf("SetParts of an unknown parent: %v, want ErrNotFound", err)
	}
	if err := s.Pending(ctx, parent, "alice", time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, p := range parts[:2] {
		if err := s.Pending(ctx, p.ID, "alice", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetParts(ctx, parent, g); err != nil {
		t.Fatal(err)
	}
	// A second call replaces the first (a part that failed to publish).
	g.Parts = append([]correlation.Part(nil), parts...)
	g.Parts[2].Failed = "the broker refused it"
	if err := s.SetParts(ctx, parent, g); err != nil {
		t.Fatal(err)
	}
	res, err := s.Get(ctx, parent)
	if err != nil || res.State != correlation.StatePending || res.Principal != "alice" || res.Gather == nil || len(res.Gather.Parts) != len(parts) {
		t.Fatalf("Get(parent) = %+v, %v: want pending with %d parts", res, err, len(parts))
	}
	if gg := res.Gather; gg.Route != g.Route || gg.Rule != g.Rule || gg.Quorum != g.Quorum {
		t.Errorf("Gather = %+v, want %+v", gg, g)
	}
	for i, p := range res.Gather.Parts {
		if p.Name != parts[i].Name || p.Destination != parts[i].Destination || p.ID != parts[i].ID || !p.Deadline.Equal(parts[i].Deadline) || p.Failed != g.Parts[i].Failed {
			t.Errorf("part %d = %+v, want %+v", i, p, parts[i])
		}
	}
	if res.Parent != "" {
		t.Errorf("the parent has a parent: %q", res.Parent)
	}
	if err := s.Complete(ctx, FullReply(parts[0].ID)); err != nil {
		t.Fatal(err)
	}
	for _, p := range parts[:2] {
		res, err := s.Get(ctx, p.ID)
		if err != nil || res.Parent != parent {
			t.Errorf("Get(part %s) = parent %q, %v; want %q", p.Name, res.Parent, err, parent)
		}
	}
	if _, err := s.Get(ctx, parts[2].ID); !errors.Is(err, correlation.ErrNotFound) {
		t.Errorf("a part without a record got one: %v", err)
	}
	if err := s.Cancel(ctx, parent, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetParts(ctx, parent, g); !errors.Is(err, correlation.ErrCancelled) {
		t.Errorf("SetParts of a cancelled parent: %v, want ErrCancelled", err)
	}
	if res, err := s.Get(ctx, parent); err != nil || res.Gather == nil || len(res.Gather.Parts) != len(parts) {
		t.Errorf("a cancelled parent keeps its parts: %+v, %v", res, err)
	}
}
