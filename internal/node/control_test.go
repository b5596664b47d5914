package node_test

import (
	"bytes"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

func idemConfig() node.Config {
	cfg := testConfig()
	cfg.Routes = append(cfg.Routes, node.RouteConfig{Name: "pay", Method: "POST", Path: "/t/pay",
		Destination: "demo.sleep", Mode: "sync", Timeout: 10 * time.Second, RequireIdempotencyKey: true})
	return cfg
}

func TestIdempotencyEndToEnd(t *testing.T) {
	n := start(t, idemConfig())
	published := func() float64 {
		return sample(scrape(t, n.base), "syncgate_publish_duration_seconds", map[string]string{"destination": "demo.sleep"})
	}
	before := max(published(), 0)

	const clients = 50
	type answer struct {
		status int
		id     string
		body   []byte
	}
	answers := make([]answer, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", n.base+"/t/pay?ms=300", bytes.NewReader([]byte(`{"amount":10}`)))
			req.Header.Set("Idempotency-Key", `"order-42"`)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			answers[i] = answer{resp.StatusCode, resp.Header.Get(api.HeaderCorrelationID), b.Bytes()}
		})
	}
	wg.Wait()
	for i, a := range answers {
		if a.status != 200 || a.id != answers[0].id || string(a.body) != `{"amount":10}` {
			t.Fatalf("answer %d = %+v, want 50 identical 200s", i, a)
		}
	}
	if got := published() - before; got != 1 {
		t.Fatalf("%v messages published for one key, want 1", got)
	}

	// Replay after completion: same answer, nothing published.
	resp, body := send(t, "POST", n.base+"/t/pay?ms=300", []byte(`{"amount":10}`), map[string]string{"Idempotency-Key": "order-42"})
	if resp.StatusCode != 200 || resp.Header.Get(api.HeaderCorrelationID) != answers[0].id || resp.Header.Get(api.HeaderIdempotentReplayed) != "true" {
		t.Fatalf("replay: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	// Same key, another payload: 422. No key on a route that requires one: 400.
	resp, body = send(t, "POST", n.base+"/t/pay?ms=300", []byte(`{"amount":99}`), map[string]string{"Idempotency-Key": "order-42"})
	problem(t, resp, body, api.ProblemKeyMismatch)
	resp, body = send(t, "POST", n.base+"/t/pay", []byte(`{}`), nil)
	problem(t, resp, body, api.ProblemKeyRequired)
	if got := published() - before; got != 1 {
		t.Errorf("%v messages published in all, want 1", got)
	}

	// A repeated key on an async answer gets the same Location.
	h := map[string]string{"Idempotency-Key": "async-1", "Prefer": "respond-async"}
	r1, _ := send(t, "POST", n.base+"/demo/echo", []byte("a"), h)
	r2, _ := send(t, "POST", n.base+"/demo/echo", []byte("a"), h)
	if r1.StatusCode != 202 || r2.StatusCode != 202 || r1.Header.Get("Location") != r2.Header.Get("Location") {
		t.Errorf("async repeats: %d %q, %d %q", r1.StatusCode, r1.Header.Get("Location"), r2.StatusCode, r2.Header.Get("Location"))
	}
}

func TestCancelAndLongPoll(t *testing.T) {
	n := start(t, testConfig())

	// Long poll: answered as soon as the reply is in, well before ?wait.
	resp, _ := send(t, "POST", n.base+"/demo/sleep?ms=300", []byte("slow"), map[string]string{"Prefer": "respond-async"})
	loc := resp.Header.Get("Location")
	start := time.Now()
	resp, body := send(t, "GET", n.base+loc+"?wait=20s", nil, nil)
	if resp.StatusCode != 200 || string(body) != "slow" {
		t.Fatalf("long poll: %d %s", resp.StatusCode, body)
	}
	if e := time.Since(start); e > 10*time.Second {
		t.Errorf("long poll took %v: it must wake on the reply", e)
	}
	// A pending long poll answers 202 after its wait.
	resp, _ = send(t, "POST", n.base+"/demo/sleep?ms=2000", []byte("x"), map[string]string{"Prefer": "respond-async"})
	loc = resp.Header.Get("Location")
	if resp, _ := send(t, "GET", n.base+loc+"?wait=100ms", nil, nil); resp.StatusCode != 202 {
		t.Fatalf("pending long poll: %d", resp.StatusCode)
	}

	// Cancel: 204, the late reply is discarded and counted, GET is 410.
	resp, body = send(t, "DELETE", n.base+loc, nil, nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	resp, body = send(t, "GET", n.base+loc+"?wait=10s", nil, nil)
	problem(t, resp, body, api.ProblemRequestCancelled)
	testenv.Eventually(t, 10*time.Second, "the late reply is discarded", func() bool {
		return sample(scrape(t, n.base), "syncgate_replies_total", map[string]string{"outcome": "cancelled"}) == 1
	})
	resp, body = send(t, "GET", n.base+loc, nil, nil)
	problem(t, resp, body, api.ProblemRequestCancelled)
}
