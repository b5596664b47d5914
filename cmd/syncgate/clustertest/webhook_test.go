package clustertest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/internal/testenv"
	"github.com/syncgate/syncgate/push/webhook"
)

// routeHook is async, with a callback to 127.0.0.1 (hookSecret, attempts
// of 2 s).
const (
	routeHook  = "/hook"
	hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

// A delivery under way on a node that dies is finished by another node:
// node a claims it and its attempt hangs at the receiver; a is killed;
// node b, started afterwards, claims it once a's lease has run out and
// delivers it, with the same webhook-id and a valid signature. The
// record shows the one recorded attempt (a's died with it).
func TestWebhookFinishedByAnotherNode(t *testing.T) {
	c := newClusterRoutes(t, `  - {name: hook, method: POST, path: `+routeHook+`, destination: ${requests}, mode: async, timeout: 30s,
     callback: {allow: ["127.0.0.1"], allow_private: true, secrets: ["`+hookSecret+`"], retry_for: 2m, timeout: 2s}}
`, "a", "b")
	startService(t, c, func(_ envelope.Request, owner string) decision { return decision{node: owner} })
	// Only node a delivers at first.
	if err := c.Node("b").proc.Stop(20 * time.Second); err != nil {
		t.Fatalf("stopping node b: %v", err)
	}

	type hit struct {
		header http.Header
		body   []byte
	}
	var (
		mu   sync.Mutex
		hits []hit
	)
	hung := make(chan struct{})
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		hits = append(hits, hit{r.Header.Clone(), b})
		first := len(hits) == 1
		mu.Unlock()
		if first {
			close(hung)
			<-r.Context().Done() // until the node's connection goes
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer recv.Close()

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	resp, err := c.post(ctx, c.Node("a"), routeHook, "deliver me", "Callback-Url", recv.URL+"/cb")
	if err != nil || resp.status != http.StatusAccepted {
		t.Fatalf("POST %s: %d %v %s", routeHook, resp.status, err, resp.body)
	}
	select {
	case <-hung:
	case <-ctx.Done():
		t.Fatal("node a made no delivery attempt")
	}
	c.Node("a").proc.Kill()
	b := c.Restart("b")

	var state string
	testenv.Eventually(t, 40*time.Second, "node b delivered the callback", func() bool {
		status, _, err := c.get(b, "/v1/requests/"+resp.id)
		if err != nil || status != http.StatusOK {
			return false
		}
		st, body, err := c.send(http.MethodGet, b, "/v1/requests/"+resp.id+"/callback")
		state = body
		return err == nil && st == http.StatusOK && strings.Contains(body, `"state":"delivered"`)
	})
	if !strings.Contains(state, `"attempt_count":1`) {
		t.Errorf("callback %s, want the one attempt node b recorded", state)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hits) != 2 {
		t.Fatalf("the receiver got %d POSTs, want 2 (the hung one and node b's)", len(hits))
	}
	secret, _ := webhook.ParseSecret(hookSecret)
	for i, h := range hits {
		if h.header.Get("webhook-id") != resp.id {
			t.Errorf("POST %d: webhook-id %q, want %s", i, h.header.Get("webhook-id"), resp.id)
		}
		if err := webhook.Verify(h.header, h.body, []webhook.Secret{secret}, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("POST %d: %v", i, err)
		}
	}
}
