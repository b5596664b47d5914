package gateway_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
)

// recorder is a Publisher that hands every published message to the test,
// which plays the service.
type recorder struct {
	msgs chan brokers.Message
	err  error
}

func (r *recorder) Publish(ctx context.Context, dest string, m brokers.Message) error {
	if r.err != nil {
		return r.err
	}
	select {
	case r.msgs <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type fixture struct {
	gw    *gateway.Gateway
	pub   *recorder
	store *correlation.MemoryStore
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	pub := &recorder{msgs: make(chan brokers.Message, 16)}
	store := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
	gw := gateway.New(gateway.Config{ReplyTo: "replies.test"}, pub, store)
	t.Cleanup(gw.Close)
	return &fixture{gw: gw, pub: pub, store: store}
}

// reply answers the request m with body, as a service would.
func (f *fixture) reply(t *testing.T, m brokers.Message, body string) gateway.ReplyOutcome {
	t.Helper()
	req, err := envelope.DecodeRequest(m)
	if err != nil {
		t.Fatalf("published request does not decode: %v", err)
	}
	out, err := f.gw.DispatchReply(t.Context(), envelope.Reply{
		CorrelationID: req.CorrelationID, Status: 201, ContentType: "text/plain", Body: []byte(body),
	}.Message())
	if err != nil {
		t.Fatalf("DispatchReply: %v", err)
	}
	return out
}

type result struct {
	out     gateway.Outcome
	err     error
	elapsed time.Duration
}

// do runs Do in a goroutine of the bubble and returns its result channel.
func (f *fixture) do(ctx context.Context, route *gateway.Route, prefer gateway.Preferences) <-chan result {
	ch := make(chan result, 1)
	go func() {
		start := time.Now()
		out, err := f.gw.Do(ctx, &gateway.Request{
			Route:   route,
			Message: envelope.Request{Method: "POST", Path: "/x", Body: []byte("ping")},
			Prefer:  prefer,
		})
		ch <- result{out, err, time.Since(start)}
	}()
	return ch
}

func route(mode gateway.Mode) *gateway.Route {
	return &gateway.Route{Name: "r", Destination: "svc", Mode: mode, Wait: 2 * time.Second, Timeout: 10 * time.Second}
}

func TestSyncRouteReply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		res := f.do(t.Context(), route(gateway.ModeSync), gateway.Preferences{})
		m := <-f.pub.msgs
		if got := m.Headers[envelope.ReplyTo]; got != "replies.test" {
			t.Errorf("reply-to = %q", got)
		}
		if m.Key != m.Headers[envelope.CorrelationID] {
			t.Errorf("key %q is not the correlation id %q", m.Key, m.Headers[envelope.CorrelationID])
		}
		time.Sleep(3 * time.Second) // the service takes 3 s: longer than auto's wait
		if out := f.reply(t, m, "pong"); out != gateway.ReplyDelivered {
			t.Errorf("outcome = %v, want delivered", out)
		}
		r := <-res
		if r.err != nil || r.out.Accepted || string(r.out.Reply.Body) != "pong" || r.out.Reply.Status != 201 {
			t.Fatalf("Do = %+v, %v", r.out, r.err)
		}
		if r.elapsed != 3*time.Second {
			t.Errorf("elapsed %v, want 3s", r.elapsed)
		}
		if n := f.gw.Waiting(); n != 0 {
			t.Errorf("Waiting() = %d after the reply", n)
		}
	})
}

func TestSyncRouteTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		rt := route(gateway.ModeSync)
		res := f.do(t.Context(), rt, gateway.Preferences{RespondAsync: true, Wait: time.Second})
		m := <-f.pub.msgs
		r := <-res
		if !errors.Is(r.err, gateway.ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", r.err)
		}
		if r.elapsed != rt.Timeout {
			t.Errorf("504 after %v, want the route timeout %v (preferences ignored)", r.elapsed, rt.Timeout)
		}
		if r.out.PreferenceApplied != "" {
			t.Errorf("Preference-Applied = %q on a sync route", r.out.PreferenceApplied)
		}
		// The late reply of a sync route has nobody to go to.
		if out := f.reply(t, m, "late"); out != gateway.ReplyOrphan {
			t.Errorf("late reply outcome = %v, want orphan", out)
		}
		if n := f.gw.Waiting(); n != 0 {
			t.Errorf("Waiting() = %d", n)
		}
	})
}

func TestAutoRoute202ThenPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		rt := route(gateway.ModeAuto)
		res := f.do(t.Context(), rt, gateway.Preferences{})
		m := <-f.pub.msgs
		r := <-res
		if r.err != nil || !r.out.Accepted {
			t.Fatalf("Do = %+v, %v; want 202", r.out, r.err)
		}
		if r.elapsed != rt.Wait {
			t.Errorf("202 after %v, want the route wait %v", r.elapsed, rt.Wait)
		}
		got, err := f.gw.Result(t.Context(), r.out.ID, "")
		if err != nil || got.State != correlation.StatePending {
			t.Fatalf("Result before the reply = %+v, %v; want pending", got, err)
		}
		time.Sleep(time.Second)
		if out := f.reply(t, m, "late"); out != gateway.ReplyStored {
			t.Fatalf("late reply outcome = %v, want stored", out)
		}
		got, err = f.gw.Result(t.Context(), r.out.ID, "")
		if err != nil || got.State != correlation.StateDone || string(got.Reply.Body) != "late" || got.Reply.Status != 201 {
			t.Fatalf("Result after the reply = %+v, %v", got, err)
		}
		// A second copy of the reply is a duplicate and changes nothing.
		if out := f.reply(t, m, "again"); out != gateway.ReplyDuplicate {
			t.Errorf("duplicate outcome = %v", out)
		}
		if got, _ := f.gw.Result(t.Context(), r.out.ID, ""); string(got.Reply.Body) != "late" {
			t.Errorf("duplicate overwrote the stored reply: %q", got.Reply.Body)
		}
	})
}

func TestPendingExpiresWithTheBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		rt := route(gateway.ModeAuto)
		r := <-f.do(t.Context(), rt, gateway.Preferences{})
		m := <-f.pub.msgs
		time.Sleep(rt.Timeout) // past the request's deadline
		if _, err := f.gw.Result(t.Context(), r.out.ID, ""); !errors.Is(err, gateway.ErrNotFound) {
			t.Fatalf("Result after the budget = %v, want ErrNotFound", err)
		}
		if out := f.reply(t, m, "too late"); out != gateway.ReplyOrphan {
			t.Errorf("reply after the budget = %v, want orphan", out)
		}
	})
}

func TestDuplicateReplyDeliveredOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		res := f.do(t.Context(), route(gateway.ModeAuto), gateway.Preferences{})
		m := <-f.pub.msgs
		first, second := f.reply(t, m, "one"), f.reply(t, m, "two")
		r := <-res
		if first != gateway.ReplyDelivered || second == gateway.ReplyDelivered {
			t.Fatalf("outcomes = %v, %v; want one delivery", first, second)
		}
		if string(r.out.Reply.Body) != "one" {
			t.Errorf("body = %q, want the first reply", r.out.Reply.Body)
		}
	})
}

func TestAsyncRoute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		res := f.do(t.Context(), route(gateway.ModeAsync), gateway.Preferences{})
		m := <-f.pub.msgs
		// The reply may even land before the 202 is written.
		if out := f.reply(t, m, "fast"); out != gateway.ReplyStored {
			t.Errorf("outcome = %v, want stored", out)
		}
		r := <-res
		if r.err != nil || !r.out.Accepted || r.elapsed != 0 {
			t.Fatalf("Do = %+v, %v after %v; want 202 at once", r.out, r.err, r.elapsed)
		}
		got, err := f.gw.Result(t.Context(), r.out.ID, "")
		if err != nil || string(got.Reply.Body) != "fast" {
			t.Fatalf("Result = %+v, %v", got, err)
		}
		if f.gw.Waiting() != 0 {
			t.Error("async requests must not hold a waiter")
		}
	})
}

func TestPreferences(t *testing.T) {
	tests := []struct {
		name        string
		mode        gateway.Mode
		prefer      gateway.Preferences
		wantWait    time.Duration
		wantApplied string
	}{
		{"respond-async on auto", gateway.ModeAuto, gateway.Preferences{RespondAsync: true}, 0, "respond-async"},
		{"respond-async on async", gateway.ModeAsync, gateway.Preferences{RespondAsync: true}, 0, "respond-async"},
		{"wait shorter than the route's", gateway.ModeAuto, gateway.Preferences{Wait: time.Second}, time.Second, "wait=1"},
		{"wait longer than the route's", gateway.ModeAuto, gateway.Preferences{Wait: 4 * time.Second}, 4 * time.Second, "wait=4"},
		{"wait capped by the timeout", gateway.ModeAuto, gateway.Preferences{Wait: time.Hour}, 10 * time.Second, "wait=10"},
		{"no preference", gateway.ModeAuto, gateway.Preferences{}, 2 * time.Second, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFixture(t)
				res := f.do(t.Context(), route(tt.mode), tt.prefer)
				<-f.pub.msgs
				r := <-res
				if r.err != nil || !r.out.Accepted {
					t.Fatalf("Do = %+v, %v; want 202", r.out, r.err)
				}
				if r.elapsed != tt.wantWait {
					t.Errorf("202 after %v, want %v", r.elapsed, tt.wantWait)
				}
				if r.out.PreferenceApplied != tt.wantApplied {
					t.Errorf("Preference-Applied = %q, want %q", r.out.PreferenceApplied, tt.wantApplied)
				}
			})
		})
	}
}

func TestPublishFailure(t *testing.T) {
	for _, mode := range []gateway.Mode{gateway.ModeSync, gateway.ModeAuto, gateway.ModeAsync} {
		t.Run(string(mode), func(t *testing.T) {
			f := newFixture(t)
			f.pub.err = brokers.ErrUnavailable
			_, err := f.gw.Do(t.Context(), &gateway.Request{Route: route(mode)})
			if !errors.Is(err, gateway.ErrUnavailable) || !errors.Is(err, brokers.ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable wrapping the broker's error", err)
			}
			if f.gw.Waiting() != 0 || f.store.Len() != 0 {
				t.Errorf("left behind: %d waiters, %d stored", f.gw.Waiting(), f.store.Len())
			}
		})
	}
}

func TestClientGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		ctx, cancel := context.WithCancel(t.Context())
		res := f.do(ctx, route(gateway.ModeSync), gateway.Preferences{})
		<-f.pub.msgs
		time.Sleep(time.Second)
		cancel()
		r := <-res
		if !errors.Is(r.err, context.Canceled) || r.elapsed != time.Second {
			t.Fatalf("err = %v after %v, want context.Canceled after 1s", r.err, r.elapsed)
		}
		if f.gw.Waiting() != 0 {
			t.Errorf("Waiting() = %d after the client left", f.gw.Waiting())
		}
	})
}

func TestCloseAnswersWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		sync := f.do(t.Context(), route(gateway.ModeSync), gateway.Preferences{})
		auto := f.do(t.Context(), route(gateway.ModeAuto), gateway.Preferences{Wait: 9 * time.Second})
		<-f.pub.msgs
		<-f.pub.msgs
		synctest.Wait() // both are waiting for their replies
		f.gw.Close()
		if r := <-sync; !errors.Is(r.err, gateway.ErrShuttingDown) || r.elapsed != 0 {
			t.Errorf("sync route on Close: %v after %v, want ErrShuttingDown at once", r.err, r.elapsed)
		}
		// Results are in this process's memory: a 202 would name a
		// Location that dies with it.
		if r := <-auto; !errors.Is(r.err, gateway.ErrShuttingDown) || r.out.Accepted {
			t.Errorf("auto route on Close: %+v, %v; want ErrShuttingDown, no 202", r.out, r.err)
		}
		if _, err := f.gw.Do(t.Context(), &gateway.Request{Route: route(gateway.ModeSync)}); !errors.Is(err, gateway.ErrShuttingDown) {
			t.Errorf("Do after Close = %v, want ErrShuttingDown", err)
		}
	})
}

// While a node with local results drains, nothing is answered 202: an
// async request is refused before it is published, and an auto request
// whose wait runs out waits on for its reply.
func TestDrainPromisesNoLocalLocation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		auto := f.do(t.Context(), route(gateway.ModeAuto), gateway.Preferences{Wait: time.Second})
		m := <-f.pub.msgs
		f.gw.Drain()
		time.Sleep(3 * time.Second) // past the wait: before Drain this was a 202
		select {
		case r := <-auto:
			t.Fatalf("auto request answered while draining before its reply: %+v, %v", r.out, r.err)
		default:
		}
		if out := f.reply(t, m, "late but in time"); out != gateway.ReplyDelivered {
			t.Fatalf("reply during drain: %v, want delivered", out)
		}
		if r := <-auto; r.err != nil || r.out.Accepted || string(r.out.Reply.Body) != "late but in time" {
			t.Errorf("auto request during drain: %+v, %v; want its reply", r.out, r.err)
		}

		async := f.do(t.Context(), route(gateway.ModeAsync), gateway.Preferences{})
		if r := <-async; !errors.Is(r.err, gateway.ErrShuttingDown) || r.out.Accepted {
			t.Errorf("async request while draining: %+v, %v; want ErrShuttingDown", r.out, r.err)
		}
		select {
		case m := <-f.pub.msgs:
			t.Errorf("an async request refused while draining was published: %v", m.Headers)
		default:
		}
		if f.store.Len() != 0 {
			t.Errorf("%d records stored for refused requests", f.store.Len())
		}
	})
}

// durableStore is a MemoryStore that says its records outlive the
// process, as redisstate.Store does.
type durableStore struct{ *correlation.MemoryStore }

func (durableStore) OutlivesProcess() bool { return true }

// Whether a draining node may still answer 202 is a property of its Store,
// not of cluster mode: one whose records outlive the process may, on a
// single node too; Close then answers an auto request's wait with 202.
func TestDrainWithAStoreThatOutlivesTheProcess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub := &recorder{msgs: make(chan brokers.Message, 16)}
		store := durableStore{correlation.NewMemoryStore(correlation.MemoryStoreConfig{})}
		gw := gateway.New(gateway.Config{ReplyTo: "replies.test"}, pub, store)
		f := &fixture{gw: gw, pub: pub, store: store.MemoryStore}
		f.gw.Drain()
		if r := <-f.do(t.Context(), route(gateway.ModeAsync), gateway.Preferences{}); r.err != nil || !r.out.Accepted {
			t.Fatalf("async request while draining: %+v, %v; want 202", r.out, r.err)
		}
		<-f.pub.msgs
		if r := <-f.do(t.Context(), route(gateway.ModeAuto), gateway.Preferences{Wait: time.Second}); r.err != nil || !r.out.Accepted {
			t.Fatalf("auto request past its wait while draining: %+v, %v; want 202", r.out, r.err)
		}
		<-f.pub.msgs
		auto := f.do(t.Context(), route(gateway.ModeAuto), gateway.Preferences{Wait: 9 * time.Second})
		<-f.pub.msgs
		synctest.Wait()
		f.gw.Close()
		if r := <-auto; r.err != nil || !r.out.Accepted {
			t.Errorf("auto route on Close: %+v, %v; want 202", r.out, r.err)
		}
	})
}

func TestInvalidReplies(t *testing.T) {
	f := newFixture(t)
	for name, m := range map[string]brokers.Message{
		"no headers":        {Body: []byte("x")},
		"no correlation id": {Headers: map[string]string{"status": "200"}},
		"bad id":            {Headers: map[string]string{envelope.CorrelationID: "not-a-uuid"}},
		"bad status":        {Headers: map[string]string{envelope.CorrelationID: correlation.NewID(), envelope.Status: "abc"}},
		"bad header":        {Headers: map[string]string{envelope.CorrelationID: correlation.NewID(), "http-header-x": "a\r\nb"}},
	} {
		out, err := f.gw.DispatchReply(t.Context(), m)
		if out != gateway.ReplyInvalid || err != nil {
			t.Errorf("%s: %v, %v; want invalid, nil", name, out, err)
		}
	}
}
