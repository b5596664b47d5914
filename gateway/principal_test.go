package gateway_test

import (
	"errors"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
)

func as(principal string, req *gateway.Request) *gateway.Request {
	req.Principal = principal
	return req
}

// notFound asserts that principal sees id exactly as an unknown id:
// Result, a long poll (at once, not after its wait) and Cancel all answer
// ErrNotFound with an empty result.
func notFound(t *testing.T, f *fixture, id, principal string) {
	t.Helper()
	if res, err := f.gw.Result(t.Context(), id, principal); !errors.Is(err, gateway.ErrNotFound) || !reflect.DeepEqual(res, correlation.Result{}) {
		t.Errorf("Result by %q = %+v, %v; want ErrNotFound", principal, res, err)
	}
	start := time.Now()
	if res, err := f.gw.Await(t.Context(), id, principal, time.Hour); !errors.Is(err, gateway.ErrNotFound) || !reflect.DeepEqual(res, correlation.Result{}) {
		t.Errorf("Await by %q = %+v, %v; want ErrNotFound", principal, res, err)
	}
	if d := time.Since(start); d != 0 {
		t.Errorf("Await by %q took %v; an unknown id answers at once", principal, d)
	}
	if err := f.gw.Cancel(t.Context(), id, principal); !errors.Is(err, gateway.ErrNotFound) {
		t.Errorf("Cancel by %q = %v; want ErrNotFound", principal, err)
	}
}

func TestRequestsBelongToTheirPrincipal(t *testing.T) {
	for _, mode := range []gateway.Mode{gateway.ModeAsync, gateway.ModeAuto} {
		t.Run(string(mode), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFixture(t)
				out, err := f.gw.Do(t.Context(), as("alice", keyed(route(mode), "", "pay")))
				if err != nil || !out.Accepted {
					t.Fatalf("Do = %+v, %v; want 202", out, err)
				}
				m := <-f.pub.msgs
				for _, other := range []string{"bob", "", "Alice"} {
					notFound(t, f, out.ID, other)
				}
				if res, err := f.gw.Result(t.Context(), out.ID, "alice"); err != nil || res.State != correlation.StatePending {
					t.Fatalf("alice's Result = %+v, %v; want pending (bob's cancel must not count)", res, err)
				}
				f.reply(t, m, "paid")
				res, err := f.gw.Await(t.Context(), out.ID, "alice", time.Second)
				if err != nil || res.State != correlation.StateDone || string(res.Reply.Body) != "paid" {
					t.Fatalf("alice's Await = %+v, %v; want the reply", res, err)
				}
				notFound(t, f, out.ID, "bob") // done: still not bob's
			})
		})
	}
}

func TestAnonymousRequestsAreAnybodys(t *testing.T) {
	f := newFixture(t)
	out, err := f.gw.Do(t.Context(), keyed(route(gateway.ModeAsync), "", "x"))
	if err != nil {
		t.Fatal(err)
	}
	<-f.pub.msgs
	for _, who := range []string{"", "bob"} {
		if res, err := f.gw.Result(t.Context(), out.ID, who); err != nil || res.State != correlation.StatePending {
			t.Errorf("Result by %q = %+v, %v; want pending", who, res, err)
		}
	}
	if err := f.gw.Cancel(t.Context(), out.ID, "bob"); err != nil {
		t.Errorf("Cancel by bob: %v", err)
	}
}

func TestIdempotencyKeysAreScopedByPrincipal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		rt := route(gateway.ModeAsync)
		published := func(want int) {
			t.Helper()
			if got := len(f.pub.msgs); got != want {
				t.Fatalf("%d published, want %d", got, want)
			}
			for range want {
				<-f.pub.msgs
			}
		}
		alice, err := f.gw.Do(t.Context(), as("alice", keyed(rt, "k", "pay 10")))
		if err != nil {
			t.Fatal(err)
		}
		published(1)
		// Another principal, the same key and body: its own request.
		bob, err := f.gw.Do(t.Context(), as("bob", keyed(rt, "k", "pay 10")))
		if err != nil || bob.Attached || bob.ID == alice.ID {
			t.Fatalf("bob = %+v, %v; want a request of his own", bob, err)
		}
		published(1)
		anon, err := f.gw.Do(t.Context(), keyed(rt, "k", "pay 10"))
		if err != nil || anon.Attached || anon.ID == alice.ID || anon.ID == bob.ID {
			t.Fatalf("anonymous = %+v, %v; want a request of its own", anon, err)
		}
		published(1)
		// The same principal again attaches, publishing nothing.
		again, err := f.gw.Do(t.Context(), as("alice", keyed(rt, "k", "pay 10")))
		if err != nil || !again.Attached || again.ID != alice.ID {
			t.Fatalf("alice again = %+v, %v; want attached to %s", again, err, alice.ID)
		}
		published(0)

		// Route and principal are delimited: route "a:b" of principal
		// "c" is not route "a" of principal "b:c".
		ab, a := route(gateway.ModeAsync), route(gateway.ModeAsync)
		ab.Name, a.Name = "a:b", "a"
		first, err := f.gw.Do(t.Context(), as("c", keyed(ab, "k", "x")))
		if err != nil {
			t.Fatal(err)
		}
		second, err := f.gw.Do(t.Context(), as("b:c", keyed(a, "k", "x")))
		if err != nil || second.Attached || second.ID == first.ID {
			t.Fatalf("(a, b:c) = %+v, %v; attached to (a:b, c)", second, err)
		}
		published(2)
	})
}

func TestFingerprintCoversForwardedHeaders(t *testing.T) {
	f := newFixture(t)
	rt := route(gateway.ModeAsync)
	withHeader := func(key string, h map[string]string) *gateway.Request {
		req := as("alice", keyed(rt, key, "same body"))
		req.Message.Header = h
		return req
	}
	first, err := f.gw.Do(t.Context(), withHeader("k", map[string]string{"Accept-Language": "de", "X-Tenant": "t1"}))
	if err != nil {
		t.Fatal(err)
	}
	<-f.pub.msgs
	// The same headers (a map has no order) attach.
	again, err := f.gw.Do(t.Context(), withHeader("k", map[string]string{"X-Tenant": "t1", "Accept-Language": "de"}))
	if err != nil || !again.Attached || again.ID != first.ID {
		t.Fatalf("same headers = %+v, %v; want attached", again, err)
	}
	for name, h := range map[string]map[string]string{
		"another value":  {"Accept-Language": "fr", "X-Tenant": "t1"},
		"one missing":    {"Accept-Language": "de"},
		"none":           nil,
		"one more":       {"Accept-Language": "de", "X-Tenant": "t1", "X-Other": "1"},
		"boundary moved": {"Accept-Language": "d", "X-Tenant": "et1"},
	} {
		if _, err := f.gw.Do(t.Context(), withHeader("k", h)); !errors.Is(err, gateway.ErrKeyMismatch) {
			t.Errorf("%s: %v, want ErrKeyMismatch", name, err)
		}
	}
	// A name and value that concatenate alike still differ.
	if _, err := f.gw.Do(t.Context(), withHeader("k2", map[string]string{"A": "bc"})); err != nil {
		t.Fatal(err)
	}
	<-f.pub.msgs
	if _, err := f.gw.Do(t.Context(), withHeader("k2", map[string]string{"Ab": "c"})); !errors.Is(err, gateway.ErrKeyMismatch) {
		t.Errorf("A: bc vs Ab: c: %v, want ErrKeyMismatch", err)
	}
	if n := len(f.pub.msgs); n != 0 {
		t.Errorf("%d published for mismatched keys", n)
	}
}

func TestThePrincipalTravelsInTheEnvelope(t *testing.T) {
	f := newFixture(t)
	rt := route(gateway.ModeAsync)
	for _, tc := range []struct{ principal, want string }{{"alice", "alice"}, {"", ""}} {
		// Whatever the message held, the gateway's principal is the one
		// published; a forwarded HTTP header of that name stays an HTTP
		// header.
		req := as(tc.principal, keyed(rt, "", "x"))
		req.Message.Principal = "mallory"
		req.Message.Header = map[string]string{"Principal": "mallory"}
		if _, err := f.gw.Do(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		m := <-f.pub.msgs
		got, ok := m.Headers[envelope.Principal]
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("principal %q: header %q (present %v), want %q", tc.principal, got, ok, tc.want)
		}
		if h := m.Headers[envelope.HeaderPrefix+"principal"]; h != "mallory" {
			t.Errorf("forwarded header http-header-principal = %q", h)
		}
		dec, err := envelope.DecodeRequest(m)
		if err != nil || dec.Principal != tc.want {
			t.Errorf("decoded principal %q, %v; want %q", dec.Principal, err, tc.want)
		}
	}
}
