package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/internal/testenv"
	"github.com/syncgate/syncgate/push/webhook"
)

// receiver is a webhook receiver that answers with the statuses it is
// given, in turn (the last one from then on), and keeps what it got.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	got      []delivery
}

type delivery struct {
	header http.Header
	body   []byte
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.got = append(rc.got, delivery{r.Header.Clone(), b})
	status := rc.statuses[min(len(rc.got), len(rc.statuses))-1]
	rc.mu.Unlock()
	w.WriteHeader(status)
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

var (
	secretA = webhook.Secret("first secret, 24 bytes..")
	secretB = webhook.Secret("second secret, rotated in")
)

// setUp stores a completed request with a callback to url on route r and
// runs a deliverer with routes until the test ends.
func setUp(t *testing.T, url string, until time.Duration, routes map[string]webhook.Route) (*correlation.MemoryStore, string) {
	t.Helper()
	store := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
	id := correlation.NewID()
	ctx := t.Context()
	if err := store.Pending(ctx, id, "", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := store.SetCallback(ctx, id, correlation.Callback{URL: url, Route: "r", Until: time.Now().Add(until)}); err != nil {
		t.Fatal(err)
	}
	d := webhook.New(webhook.Config{Store: store, Routes: routes, Wake: store.DeliveriesQueued(), Poll: 20 * time.Millisecond,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 80 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	rep := envelope.Reply{CorrelationID: id, Status: 201, ContentType: "application/json",
		Header: map[string]string{"location": "/orders/7"}, Body: []byte(`{"order":7}`)}
	if err := store.Complete(ctx, rep); err != nil {
		t.Fatal(err)
	}
	return store, id
}

// final waits until the delivery of id is delivered or failed.
func final(t *testing.T, store *correlation.MemoryStore, id string) *correlation.Delivery {
	t.Helper()
	var d *correlation.Delivery
	testenv.Eventually(t, 10*time.Second, "the delivery ended", func() bool {
		res, err := store.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		d = res.Delivery
		return d.State == correlation.DeliveryDelivered || d.State == correlation.DeliveryFailed
	})
	return d
}

// A delivery that the receiver answers 500 is retried, with the same
// webhook-id, until it answers 2xx; every attempt is recorded; each one
// carries one signature per secret, which a receiver verifies with the
// documented algorithm: base64 HMAC-SHA256 of id.timestamp.body.
func TestDeliverRetriesUntilDelivered(t *testing.T) {
	rc := &receiver{statuses: []int{500, 503, 204}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	route := webhook.Route{Secrets: []webhook.Secret{secretA, secretB}, Guard: webhook.Guard{Allow: []string{"127.0.0.1"}, AllowPrivate: true}}
	store, id := setUp(t, srv.URL+"/hook", time.Minute, map[string]webhook.Route{"r": route})
	d := final(t, store, id)
	if d.State != correlation.DeliveryDelivered || d.Count != 3 || len(d.Attempts) != 3 ||
		d.Attempts[0].Status != 500 || d.Attempts[1].Status != 503 || d.Attempts[2].Status != 204 {
		t.Fatalf("delivery %+v", d)
	}
	got := rc.deliveries()
	if len(got) != 3 {
		t.Fatalf("the receiver got %d deliveries, want 3", len(got))
	}
	for i, g := range got {
		if g.header.Get("webhook-id") != id {
			t.Errorf("attempt %d: webhook-id %q, want the correlation id", i, g.header.Get("webhook-id"))
		}
		// By hand, as a receiver without our package would.
		ts := g.header.Get("webhook-timestamp")
		sigs := strings.Fields(g.header.Get("webhook-signature"))
		if len(sigs) != 2 {
			t.Fatalf("attempt %d: signatures %q, want two (rotation)", i, sigs)
		}
		for j, secret := range []webhook.Secret{secretA, secretB} {
			m := hmac.New(sha256.New, secret)
			m.Write([]byte(id + "." + ts + "."))
			m.Write(g.body)
			if want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil)); sigs[j] != want {
				t.Errorf("attempt %d: signature %d is %s, want %s", i, j, sigs[j], want)
			}
		}
		if err := webhook.Verify(g.header, g.body, []webhook.Secret{secretB}, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("attempt %d: Verify with the new secret alone: %v", i, err)
		}
	}
	var data struct {
		Type, ID    string
		Status      int
		Headers     map[string][]string
		ContentType string `json:"content_type"`
		Body        string
	}
	if err := json.Unmarshal(got[2].body, &data); err != nil {
		t.Fatal(err)
	}
	if data.Type != webhook.EventType || data.ID != id || data.Status != 201 || data.ContentType != "application/json" ||
		data.Body != `{"order":7}` || data.Headers["Location"][0] != "/orders/7" {
		t.Errorf("data %s", got[2].body)
	}
	if ct := got[2].header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

// A receiver that keeps failing is retried until the callback's window
// closes, then the delivery fails.
func TestDeliverGivesUpAfterTheWindow(t *testing.T) {
	rc := &receiver{statuses: []int{500}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	route := webhook.Route{Secrets: []webhook.Secret{secretA}, Guard: webhook.Guard{Allow: []string{"127.0.0.1"}, AllowPrivate: true}}
	store, id := setUp(t, srv.URL, 400*time.Millisecond, map[string]webhook.Route{"r": route})
	d := final(t, store, id)
	if d.State != correlation.DeliveryFailed || d.Count < 2 || d.Count != len(rc.deliveries()) {
		t.Fatalf("delivery %+v after %d deliveries, want failed after several", d, len(rc.deliveries()))
	}
	// The last retry was due before the window closed; it starts when a
	// poll of the queue finds it due, a poll interval (20 ms here) later
	// at most, give or take a loaded machine.
	if last := d.Attempts[len(d.Attempts)-1]; last.Status != 500 || last.At.After(d.Until.Add(time.Second)) {
		t.Errorf("last attempt %+v, window until %v", last, d.Until)
	}
}

// The guard refuses, for good and without retries: a loopback receiver
// unless private addresses are allowed, a DNS name that resolves to
// loopback, and a redirect to a host outside the allow list. A route
// without callback settings fails its deliveries too.
func TestDeliverRefusals(t *testing.T) {
	rc := &receiver{statuses: []int{204}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	for _, tc := range []struct {
		name  string
		url   string
		route webhook.Route
		want  string
	}{
		{"loopback", srv.URL, webhook.Route{Guard: webhook.Guard{Allow: []string{"127.0.0.1"}}}, "not a public address"},
		{"name of loopback", "http://localhost" + port, webhook.Route{Guard: webhook.Guard{Allow: []string{"localhost"}}}, "not a public address"},
		{"redirect", redirect.URL, webhook.Route{Guard: webhook.Guard{Allow: []string{"127.0.0.1"}, AllowPrivate: true}}, "matches none of callback.allow"},
		{"host not allowed", srv.URL, webhook.Route{Guard: webhook.Guard{Allow: []string{"hooks.example.com"}, AllowPrivate: true}}, "matches none of callback.allow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, id := setUp(t, tc.url, time.Minute, map[string]webhook.Route{"r": tc.route})
			d := final(t, store, id)
			if d.State != correlation.DeliveryFailed || d.Count != 1 || !strings.Contains(d.Attempts[0].Error, tc.want) {
				t.Errorf("delivery %+v, want failed at once with %q", d, tc.want)
			}
		})
	}
	if n := len(rc.deliveries()); n != 0 {
		t.Errorf("the receiver got %d deliveries, want none", n)
	}
	store, id := setUp(t, srv.URL, time.Minute, map[string]webhook.Route{})
	if d := final(t, store, id); d.State != correlation.DeliveryFailed || !strings.Contains(d.Attempts[0].Error, "no callback settings") {
		t.Errorf("a route without settings: %+v", d)
	}
}
