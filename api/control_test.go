package api_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
)

const someID = "019ab5c2-8a2e-7c43-9d1b-5b0e2f7c9a10"

func TestGatewayErrorsBecomeProblems(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want api.ProblemType
	}{
		{gateway.ErrTimeout, api.ProblemTimeout},
		{gateway.ErrUnavailable, api.ProblemBrokerDown},
		{gateway.ErrShuttingDown, api.ProblemShuttingDown},
		{gateway.ErrStore, api.ProblemStoreDown},
		{gateway.ErrKeyRequired, api.ProblemKeyRequired},
		{gateway.ErrKeyMismatch, api.ProblemKeyMismatch},
		{gateway.ErrKeyConflict, api.ProblemKeyConflict},
		{gateway.ErrCancelled, api.ProblemRequestCancelled},
		{errors.New("bug"), api.ProblemInternal},
	} {
		h := newHandler(t, &stub{do: func(_ context.Context, req *gateway.Request) (gateway.Outcome, error) {
			return gateway.Outcome{ID: req.ID}, tt.err
		}}, nil)
		p := wantProblem(t, serve(h, "POST", "/r", "x", nil), tt.want)
		if p.CorrelationID == "" || p.Instance != "/r" {
			t.Errorf("%v: problem %+v", tt.err, p)
		}
	}
}

func TestIdempotencyKeyHeader(t *testing.T) {
	var got string
	h := newHandler(t, &stub{do: func(_ context.Context, req *gateway.Request) (gateway.Outcome, error) {
		got = req.Message.IdempotencyKey
		return gateway.Outcome{ID: someID, Attached: true, Reply: envelope.Reply{Body: []byte("first")}}, nil
	}}, nil)
	for header, want := range map[string]string{`"abc-1"`: "abc-1", "abc-2": "abc-2"} {
		rec := serve(h, "POST", "/r", "x", map[string]string{"Idempotency-Key": header})
		if rec.Code != 200 || got != want {
			t.Errorf("%s: %d, key %q", header, rec.Code, got)
		}
		// An attached request answers as the first one did.
		if rec.Header().Get(api.HeaderCorrelationID) != someID || rec.Header().Get(api.HeaderIdempotentReplayed) != "true" {
			t.Errorf("headers %v", rec.Header())
		}
	}
	for _, bad := range []string{`""`, "a b", string(make([]byte, 300))} {
		wantProblem(t, serve(h, "POST", "/r", "x", map[string]string{"Idempotency-Key": bad}), api.ProblemKeyInvalid)
	}
}

func TestLongPollAndCancel(t *testing.T) {
	var waited time.Duration
	pending := correlation.Result{State: correlation.StatePending}
	gw := &stub{
		await: func(_ context.Context, id string, d time.Duration) (correlation.Result, error) {
			waited = d
			return correlation.Result{State: correlation.StateDone, Reply: envelope.Reply{Status: 201, Body: []byte("in")}}, nil
		},
		result: func(id string) (correlation.Result, error) {
			switch id {
			case someID:
				return pending, nil
			case "cancelled":
				return correlation.Result{State: correlation.StateCancelled}, nil
			}
			return correlation.Result{}, gateway.ErrNotFound
		},
		cancel: func(id string) error {
			switch id {
			case someID:
				return nil
			case "done":
				return gateway.ErrCompleted
			}
			return gateway.ErrNotFound
		},
	}
	h := newHandler(t, gw, func(o *api.Options) { o.MaxPollWait = 10 * time.Second })

	rec := serve(h, "GET", api.PollPath+someID, "", nil)
	if rec.Code != http.StatusAccepted || rec.Header().Get("Location") != api.PollPath+someID {
		t.Fatalf("pending poll: %d %v", rec.Code, rec.Header())
	}
	for q, want := range map[string]time.Duration{"5s": 5 * time.Second, "3": 3 * time.Second, "1m": 10 * time.Second} {
		rec := serve(h, "GET", api.PollPath+someID+"?wait="+q, "", nil)
		if rec.Code != 201 || rec.Body.String() != "in" || waited != want {
			t.Errorf("wait=%s: %d %q, waited %v; want %v", q, rec.Code, rec.Body, waited, want)
		}
	}
	wantProblem(t, serve(h, "GET", api.PollPath+someID+"?wait=soon", "", nil), api.ProblemBadRequest)
	wantProblem(t, serve(h, "GET", api.PollPath+"cancelled", "", nil), api.ProblemRequestCancelled)
	wantProblem(t, serve(h, "GET", api.PollPath+"unknown", "", nil), api.ProblemRequestNotFound)

	if rec := serve(h, "DELETE", api.PollPath+someID, "", nil); rec.Code != http.StatusNoContent {
		t.Errorf("DELETE: %d", rec.Code)
	}
	wantProblem(t, serve(h, "DELETE", api.PollPath+"done", "", nil), api.ProblemRequestCompleted)
	wantProblem(t, serve(h, "DELETE", api.PollPath+"unknown", "", nil), api.ProblemRequestNotFound)
}

func TestReadiness(t *testing.T) {
	var consumer error = errors.New("not positioned")
	var redis error
	h := newHandler(t, &stub{}, func(o *api.Options) {
		o.Checks = []api.Check{
			{Name: "reply-consumer", Check: func(context.Context) error { return consumer }},
			{Name: "redis", Check: func(context.Context) error { return redis }, Degrades: true},
		}
	})
	rec := serve(h, "GET", "/readyz", "", nil)
	if rec.Code != http.StatusServiceUnavailable || rec.Body.String() != "not ready\nreply-consumer\n" {
		t.Fatalf("readyz: %d %q", rec.Code, rec.Body)
	}
	rec = serve(h, "GET", "/readyz?verbose", "", nil)
	if rec.Code != http.StatusServiceUnavailable || rec.Body.String() != "not ready\nreply-consumer: not positioned\n" {
		t.Fatalf("readyz?verbose: %d %q", rec.Code, rec.Body)
	}
	if rec := serve(h, "GET", "/healthz", "", nil); rec.Code != 200 {
		t.Errorf("healthz while not ready: %d", rec.Code)
	}
	consumer = nil
	if rec := serve(h, "GET", "/readyz", "", nil); rec.Code != 200 || rec.Body.String() != "ok\n" {
		t.Errorf("readyz: %d %q", rec.Code, rec.Body)
	}
	// A check that only degrades the node keeps it ready, and says so.
	redis = errors.New("dial tcp: connection refused")
	if rec := serve(h, "GET", "/readyz?verbose", "", nil); rec.Code != 200 || rec.Body.String() != "ready (degraded)\nredis: dial tcp: connection refused\n" {
		t.Errorf("readyz with redis down: %d %q", rec.Code, rec.Body)
	}
	consumer = errors.New("not positioned")
	if rec := serve(h, "GET", "/readyz?verbose", "", nil); rec.Code != http.StatusServiceUnavailable ||
		rec.Body.String() != "not ready\nreply-consumer: not positioned\nredis: dial tcp: connection refused\n" {
		t.Errorf("readyz with both down: %d %q", rec.Code, rec.Body)
	}
}

func TestPanicIsInternalProblem(t *testing.T) {
	h := newHandler(t, &stub{do: func(context.Context, *gateway.Request) (gateway.Outcome, error) {
		panic("bug")
	}}, nil)
	wantProblem(t, serve(h, "POST", "/r", "x", nil), api.ProblemInternal)
}

// The API's /readyz names the failing checks; their errors, which hold
// addresses, need ?verbose and, when auth is configured, a credential
// (issue 16, point 7).
func TestReadyzVerboseBehindAuth(t *testing.T) {
	checks := []api.Check{{Name: "broker", Check: func(context.Context) error { return errors.New("127.0.0.1:9092 not connected") }}}
	h := newHandler(t, &stub{}, func(o *api.Options) { o.Checks, o.Auth = checks, keysAuth(t) })
	if rec := serve(h, "GET", "/readyz", "", nil); rec.Code != 503 || rec.Body.String() != "not ready\nbroker\n" {
		t.Errorf("/readyz without a credential: %d %q", rec.Code, rec.Body)
	}
	rec := serve(h, "GET", "/readyz?verbose", "", nil)
	if rec.Code != http.StatusUnauthorized || strings.Contains(rec.Body.String(), "9092") {
		t.Errorf("/readyz?verbose without a credential: %d %q, want 401 without the address", rec.Code, rec.Body)
	}
	rec = serve(h, "GET", "/readyz?verbose", "", map[string]string{"Authorization": "Bearer alice-key-1"})
	if rec.Code != 503 || rec.Body.String() != "not ready\nbroker: 127.0.0.1:9092 not connected\n" {
		t.Errorf("/readyz?verbose with a credential: %d %q", rec.Code, rec.Body)
	}
}

// With an admin listener, the API's /readyz names the failing checks only;
// the admin handler shows their errors (issue 16, points 7 and 8).
func TestReadyzNamesOnlyWithAdmin(t *testing.T) {
	checks := []api.Check{{Name: "broker", Check: func(context.Context) error { return errors.New("127.0.0.1:9092 not connected") }}}
	h := newHandler(t, &stub{}, func(o *api.Options) { o.Checks, o.ReadyzNamesOnly = checks, true })
	if rec := serve(h, "GET", "/readyz?verbose", "", nil); rec.Code != 503 || rec.Body.String() != "not ready\nbroker\n" {
		t.Fatalf("API /readyz?verbose %d %q", rec.Code, rec.Body)
	}
	admin := api.NewAdmin(api.AdminOptions{Checks: checks, Logger: slog.New(slog.DiscardHandler)})
	if rec := serve(admin, "GET", "/readyz?verbose", "", nil); rec.Code != 503 || rec.Body.String() != "not ready\nbroker: 127.0.0.1:9092 not connected\n" {
		t.Fatalf("admin /readyz %d %q", rec.Code, rec.Body)
	}
}
