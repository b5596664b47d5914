package node_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/internal/node"
)

// An accepted request is a promise: a flood of other requests, ten times the
// store's cap, must not evict its pending record. The flood is refused with
// 503 and Retry-After once the store is full; the accepted request polls 202
// and then its reply.
func TestFullResultStoreKeepsAcceptedRequests(t *testing.T) {
	const maxEntries = 20
	cfg := testConfig()
	cfg.Results.MaxEntries = maxEntries
	n := start(t, cfg)

	// Accepted on the 60 s sleep route; the service answers after 1.5 s.
	resp, body := send(t, "POST", n.base+"/demo/sleep?ms=1500", []byte("kept"), map[string]string{"Prefer": "respond-async"})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("first request: %d %s", resp.StatusCode, body)
	}
	loc := resp.Header.Get("Location")

	accepted, refused := 0, 0
	for i := range 10 * maxEntries {
		resp, body := send(t, "PUT", n.base+"/t/async/"+strconv.Itoa(i), []byte("flood"), nil)
		switch resp.StatusCode {
		case http.StatusAccepted:
			accepted++
		case http.StatusServiceUnavailable:
			refused++
			checkStoreFull(t, resp, body)
		default:
			t.Fatalf("flood request %d: %d %s", i, resp.StatusCode, body)
		}
	}
	if accepted > maxEntries-1 || refused == 0 {
		t.Errorf("flood: %d accepted, %d refused; the store holds %d records", accepted, refused, maxEntries)
	}

	resp, body = send(t, "GET", n.base+loc, nil, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("poll of the accepted request after the flood: %d %s, want 202 (pending)", resp.StatusCode, body)
	}
	resp, body = send(t, "GET", n.base+loc+"?wait=10s", nil, nil)
	if resp.StatusCode != http.StatusOK || string(body) != "kept" {
		t.Fatalf("long poll: %d %s, want 200 kept", resp.StatusCode, body)
	}

	t.Run("auto route refused before it publishes", func(t *testing.T) {
		// It may answer 202 after its wait, so it needs room now.
		resp, body := send(t, "POST", n.base+"/t/auto?ms=0", nil, nil)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%d %s, want 503", resp.StatusCode, body)
		}
		checkStoreFull(t, resp, body)
	})
	t.Run("sync route still served", func(t *testing.T) {
		// No record, no promise: a full store is no reason to refuse it.
		resp, body := send(t, "POST", n.base+"/t/sync?ms=0", []byte("sync"), nil)
		if resp.StatusCode != http.StatusOK || string(body) != "sync" {
			t.Fatalf("%d %s, want 200", resp.StatusCode, body)
		}
	})
}

// A full idempotency store refuses new keys with 503 and Retry-After; a
// retry of a bound key is still answered from its first request.
func TestFullIdempotencyStore(t *testing.T) {
	cfg := testConfig()
	cfg.Idempotency.MaxEntries = 2
	n := start(t, cfg)
	for i := range 2 {
		key := fmt.Sprint("key-", i)
		resp, body := send(t, "POST", n.base+"/demo/echo", []byte(key), map[string]string{"Idempotency-Key": key})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", key, resp.StatusCode, body)
		}
	}
	resp, body := send(t, "POST", n.base+"/demo/echo", []byte("x"), map[string]string{"Idempotency-Key": "key-2"})
	checkStoreFull(t, resp, body)
	resp, body = send(t, "POST", n.base+"/demo/echo", []byte("key-0"), map[string]string{"Idempotency-Key": "key-0"})
	if resp.StatusCode != http.StatusOK || string(body) != "key-0" || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay of a bound key: %d %s %v", resp.StatusCode, body, resp.Header)
	}
}

// checkStoreFull checks a 503 store-full problem with a Retry-After.
func checkStoreFull(t *testing.T, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503; body %s", resp.StatusCode, body)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q, want whole seconds >= 1", resp.Header.Get("Retry-After"))
	}
	if p := problem(t, resp, body, api.ProblemStoreFull); p.Detail == "" {
		t.Error("store-full problem without a detail")
	}
}

// results.max_bytes has a default, and is settable in the file, by
// environment and by flag.
func TestResultsMaxBytesConfig(t *testing.T) {
	cfg, err := node.Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Results.MaxBytes != 256<<20 {
		t.Errorf("default results.max_bytes = %v, want 256MiB", cfg.Results.MaxBytes)
	}
	if c, err := node.Parse([]byte("results: {max_bytes: 64MiB}")); err != nil || c.Results.MaxBytes != 64<<20 {
		t.Errorf("file: %v, %v", c.Results.MaxBytes, err)
	}
	cfg, err = node.Load(nil, env(map[string]string{"SYNCGATE_RESULT_MAX_BYTES": "1MiB"}), io.Discard)
	if err != nil || cfg.Results.MaxBytes != 1<<20 {
		t.Errorf("env: %v, %v", cfg.Results.MaxBytes, err)
	}
	cfg, err = node.Load([]string{"--result-max-bytes=2MiB"}, env(map[string]string{"SYNCGATE_RESULT_MAX_BYTES": "1MiB"}), io.Discard)
	if err != nil || cfg.Results.MaxBytes != 2<<20 {
		t.Errorf("flag: %v, %v", cfg.Results.MaxBytes, err)
	}
	if _, err := node.Load([]string{"--result-max-bytes=lots"}, env(nil), io.Discard); err == nil {
		t.Error("a malformed size was accepted")
	}
}

// The node reclaims expired results by itself: after a burst of async
// requests and their TTL, with no request since, the store is empty, as
// /metrics shows.
func TestNodeReclaimsExpiredResults(t *testing.T) {
	cfg := testConfig()
	cfg.Results.TTL = 300 * time.Millisecond
	n := start(t, cfg)
	body := make([]byte, 64<<10)
	for i := range 10 {
		resp, b := send(t, "PUT", n.base+"/t/async/"+strconv.Itoa(i), body, nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		if resp, _ := send(t, "GET", n.base+resp.Header.Get("Location")+"?wait=5s", nil, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("poll: %d", resp.StatusCode)
		}
	}
	fams := scrape(t, n.base)
	if got := sample(fams, "syncgate_results_bytes", nil); got < 10*64<<10 {
		t.Fatalf("syncgate_results_bytes = %v after ten 64 KiB results", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams := scrape(t, n.base)
		stored, bytes := sample(fams, "syncgate_results_stored", nil), sample(fams, "syncgate_results_bytes", nil)
		if stored == 0 && bytes == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after a 300 ms TTL: %v results, %v bytes still stored", stored, bytes)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
}
