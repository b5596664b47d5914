package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/testenv"
	"github.com/syncgate/syncgate/push/webhook"
)

// Acceptance, through the binary: a request with Prefer: respond-async and
// a Callback-Url is answered 202, and its reply reaches the receiver as
// exactly one POST, signed with the route's secret the way Standard
// Webhooks receivers verify it; the poll shows the delivery. A callback
// to a host outside the route's allow list, or on a route without
// callbacks, is refused with 400 before anything is published.
func TestWebhookThroughTheBinary(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	var (
		mu  sync.Mutex
		got []*http.Request
		bod [][]byte
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bod = append(got, r), append(bod, b)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	cfg := filepath.Join(t.TempDir(), "webhooks.yaml")
	if err := os.WriteFile(cfg, []byte(`demo: {enabled: true}
routes:
  - name: orders
    method: POST
    path: /orders
    destination: demo.echo
    mode: auto
    wait: 2s
    callback:
      allow: ["127.0.0.1"]
      allow_private: true
      secrets: ["`+secret+`"]
      retry_for: 5m
  - name: plain
    method: POST
    path: /plain
    destination: demo.echo
    mode: async
`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, base, _ := startProcess(t, "--config", cfg, "--addr", "127.0.0.1:0", "--readiness-delay", "1ms")

	post := func(path, callback string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(`{"order":42}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Prefer", "respond-async")
		req.Header.Set("Callback-Url", callback)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, tc := range []struct{ path, url string }{
		{"/orders", "http://hooks.elsewhere.example/cb"},
		{"/orders", "ftp://127.0.0.1/cb"},
		{"/plain", recv.URL + "/cb"},
	} {
		if resp, b := post(tc.path, tc.url); resp.StatusCode != http.StatusBadRequest || !strings.Contains(b, "callback-refused") {
			t.Errorf("POST %s with Callback-Url %s: %d %s, want 400 callback-refused", tc.path, tc.url, resp.StatusCode, b)
		}
	}

	resp, b := post("/orders", recv.URL+"/cb?tenant=7")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /orders: %d %s, want 202", resp.StatusCode, b)
	}
	id, loc := resp.Header.Get("X-Correlation-Id"), resp.Header.Get("Location")
	var state string
	testenv.Eventually(t, 20*time.Second, "the delivery is recorded", func() bool {
		r, err := http.Get(base + loc)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		state = r.Header.Get("Callback-Delivery")
		return strings.HasPrefix(state, "delivered")
	})
	if state != "delivered; attempts=1; status=204" {
		t.Errorf("Callback-Delivery %q", state)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("the receiver got %d POSTs, want exactly 1", len(got))
	}
	r := got[0]
	if r.URL.Path != "/cb" || r.URL.RawQuery != "tenant=7" || r.Header.Get("webhook-id") != id {
		t.Errorf("delivery to %s, webhook-id %q; want /cb?tenant=7, %s", r.URL, r.Header.Get("webhook-id"), id)
	}
	s, _ := webhook.ParseSecret(secret)
	if err := webhook.Verify(r.Header, bod[0], []webhook.Secret{s}, time.Now(), 5*time.Minute); err != nil {
		t.Errorf("signature: %v", err)
	}
	var data struct {
		Type, ID string
		Status   int
		Body     string
	}
	if err := json.Unmarshal(bod[0], &data); err != nil || data.Type != webhook.EventType || data.ID != id || data.Status != 200 || data.Body != `{"order":42}` {
		t.Errorf("data %s (%v)", bod[0], err)
	}
	cr, err := http.Get(base + loc + "/callback")
	if err != nil {
		t.Fatal(err)
	}
	defer cr.Body.Close()
	var cb struct {
		URL      string
		State    string
		Attempts []struct{ Status int }
	}
	if err := json.NewDecoder(cr.Body).Decode(&cb); err != nil || cb.State != "delivered" || len(cb.Attempts) != 1 || cb.Attempts[0].Status != 204 {
		t.Errorf("GET %s/callback: %+v %v", loc, cb, err)
	}
}
