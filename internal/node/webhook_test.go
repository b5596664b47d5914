package node_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

// A node with a callback route, in process: an auto request answered 202
// after its wait is called back once; one answered within its wait is not
// (its caller had the reply); progress does not trigger a delivery. The
// package's goleak check covers the deliverer's goroutines and
// connections after the node stops.
func TestWebhookInProcess(t *testing.T) {
	hits := make(chan string, 8)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits <- r.Header.Get("webhook-id")
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	cfg := testConfig()
	cfg.Routes = append(cfg.Routes, node.RouteConfig{Name: "hooked", Method: "POST", Path: "/t/hooked", Destination: "demo.sleep",
		Mode: "auto", Wait: 300 * time.Millisecond, Timeout: 10 * time.Second,
		Callback: &node.CallbackConfig{Allow: []string{"127.0.0.1"}, AllowPrivate: true,
			Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, RetryFor: time.Minute}})
	n := start(t, cfg)
	cb := map[string]string{"Callback-Url": recv.URL + "/cb", "Content-Type": "text/plain"}

	resp, body := send(t, "POST", n.base+"/t/hooked?ms=10", []byte("quick"), cb)
	if resp.StatusCode != http.StatusOK || string(body) != "quick" {
		t.Fatalf("a request answered within its wait: %d %s", resp.StatusCode, body)
	}
	resp, body = send(t, "POST", n.base+"/t/hooked?ms=900&steps=3", []byte("slow"), cb)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("a request answered 202: %d %s", resp.StatusCode, body)
	}
	id := resp.Header.Get("X-Correlation-Id")
	select {
	case got := <-hits:
		if got != id {
			t.Fatalf("called back for %s, want %s (the 202's request)", got, id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no callback within 10s")
	}
	testenv.Eventually(t, 5*time.Second, "the poll shows the delivery", func() bool {
		r, _ := send(t, "GET", n.base+resp.Header.Get("Location"), nil, nil)
		return strings.HasPrefix(r.Header.Get("Callback-Delivery"), "delivered; attempts=1")
	})
	select {
	case got := <-hits:
		t.Errorf("a second callback, for %s", got)
	case <-time.After(300 * time.Millisecond): // the quick request's would have come with the slow one's
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
}
