package gateway_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/brokers/memory"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
	"github.com/syncgate/syncgate/internal/testenv"
)

// brokerFixture runs a gateway on the in-memory broker with its reply
// consumer, and a service on "svc" that answers every request with the
// headers reply returns for it (the correlation id is the request's unless
// reply sets one).
type brokerFixture struct {
	gw   *gateway.Gateway
	logs *testenv.SyncBuffer

	mu       sync.Mutex
	outcomes map[gateway.ReplyOutcome]int // of the reply consumer's DispatchReply calls
}

// counts returns the outcomes of the replies the fixture's consumer handled.
func (f *brokerFixture) counts() map[gateway.ReplyOutcome]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.outcomes)
}

func newBrokerFixture(t *testing.T, reply func(req envelope.Request) map[string]string) *brokerFixture {
	t.Helper()
	b := memory.New(memory.Config{})
	logs := &testenv.SyncBuffer{}
	store := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
	gw := gateway.New(gateway.Config{ReplyTo: "replies.test",
		Logger: slog.New(slog.NewJSONHandler(logs, nil))}, b, store)
	f := &brokerFixture{gw: gw, logs: logs, outcomes: make(map[gateway.ReplyOutcome]int)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		gw.Close()
		_ = b.Close()
	})
	ready := make(chan struct{}, 2)
	isReady := brokers.WithReady(func() { ready <- struct{}{} })
	wg.Go(func() {
		_ = b.Subscribe(ctx, "replies.test", func(ctx context.Context, m brokers.Message) error {
			out, err := gw.DispatchReply(ctx, m)
			if err == nil {
				f.mu.Lock()
				f.outcomes[out]++
				f.mu.Unlock()
			}
			return err
		}, brokers.AsInbox(), isReady)
	})
	wg.Go(func() {
		_ = b.Subscribe(ctx, "svc", func(ctx context.Context, m brokers.Message) error {
			req, err := envelope.DecodeRequest(m)
			if err != nil {
				t.Errorf("request does not decode: %v", err)
				return nil
			}
			h := map[string]string{envelope.CorrelationID: req.CorrelationID}
			for k, v := range reply(req) {
				h[k] = v
			}
			return b.Publish(ctx, req.ReplyTo, brokers.Message{Key: req.CorrelationID, Headers: h, Body: []byte("not a reply")})
		}, isReady)
	})
	<-ready
	<-ready
	return f
}

// wantInvalidReplyProblem checks that rep is the 502 invalid-reply problem
// for id.
func wantInvalidReplyProblem(t *testing.T, rep envelope.Reply, id string) {
	t.Helper()
	if rep.StatusCode() != 502 || rep.ContentType != "application/problem+json" {
		t.Fatalf("reply %d %q %s, want a 502 problem", rep.StatusCode(), rep.ContentType, rep.Body)
	}
	var p struct {
		Type, Detail  string
		CorrelationID string `json:"correlation_id"`
	}
	if err := json.Unmarshal(rep.Body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != "urn:syncgate:problem:invalid-reply" || p.CorrelationID != id || p.Detail == "" ||
		strings.Contains(p.Detail, "envelope:") {
		t.Errorf("problem %+v, want invalid-reply for %s", p, id)
	}
}

// An invalid reply to a known request ends its wait at once with a 502
// problem, and a poll gets the same; it still counts as invalid, and the
// log names the request.
func TestInvalidReplyAnswers502(t *testing.T) {
	for name, bad := range map[string]map[string]string{
		"status abc":   {envelope.Status: "abc"},
		"status 700":   {envelope.Status: "700"},
		"header name":  {"http-header-bad name": "x"},
		"header value": {"http-header-x": "a\rb"},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newBrokerFixture(t, func(envelope.Request) map[string]string { return bad })
				start := time.Now()
				out, err := f.gw.Do(t.Context(), &gateway.Request{Route: route(gateway.ModeAuto),
					Message: envelope.Request{Method: "POST", Path: "/x"}})
				if err != nil || out.Accepted {
					t.Fatalf("Do = %+v, %v; want the reply", out, err)
				}
				if d := time.Since(start); d >= time.Second {
					t.Errorf("answered after %v, want at once", d)
				}
				wantInvalidReplyProblem(t, out.Reply, out.ID)

				// A request answered 202 finds the failure stored for its poll.
				out, err = f.gw.Do(t.Context(), &gateway.Request{Route: route(gateway.ModeAsync),
					Message: envelope.Request{Method: "POST", Path: "/x"}})
				if err != nil || !out.Accepted {
					t.Fatalf("Do = %+v, %v; want 202", out, err)
				}
				start = time.Now()
				res, err := f.gw.Await(t.Context(), out.ID, "", 5*time.Second)
				if err != nil || res.State != correlation.StateDone {
					t.Fatalf("Await = %+v, %v; want done", res, err)
				}
				if d := time.Since(start); d >= time.Second {
					t.Errorf("poll answered after %v, want at once", d)
				}
				wantInvalidReplyProblem(t, res.Reply, out.ID)

				synctest.Wait()
				counts := f.counts()
				if counts[gateway.ReplyInvalid] != 2 || counts[gateway.ReplyDelivered] != 0 || counts[gateway.ReplyStored] != 0 {
					t.Errorf("counts %v, want 2 invalid", counts)
				}
				if !strings.Contains(f.logs.String(), `"correlation_id":"`+out.ID+`"`) {
					t.Errorf("no log line names %s:\n%s", out.ID, f.logs)
				}
			})
		})
	}
}

// A reply whose correlation id is missing or malformed has no request to
// answer: it is dropped and counted invalid.
func TestInvalidReplyWithoutIDDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newBrokerFixture(t, func(envelope.Request) map[string]string {
			return map[string]string{envelope.CorrelationID: "not-a-uuid"}
		})
		res := make(chan error, 1)
		go func() {
			_, err := f.gw.Do(t.Context(), &gateway.Request{Route: route(gateway.ModeSync),
				Message: envelope.Request{Method: "POST", Path: "/x"}})
			res <- err
		}()
		synctest.Wait()
		if n := f.counts()[gateway.ReplyInvalid]; n != 1 {
			t.Errorf("invalid = %d, want 1", n)
		}
		if f.gw.Waiting() != 1 {
			t.Errorf("Waiting() = %d: the request must still wait", f.gw.Waiting())
		}
		if err := <-res; err == nil {
			t.Error("the request got an answer from a reply without its id")
		}
	})
}
