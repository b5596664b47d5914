package clustertest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The cluster's rate limit test: 10 requests per second with a burst of 5
// per principal, the buckets in the cluster's Redis.
const (
	limitRate  = 10
	limitBurst = 5
	// limitSlack allows for the clocks: the window is measured here, the
	// buckets refill on Redis's clock, and a request counted at the edge
	// of the window may have been decided just outside it.
	limitSlack = 2
)

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestRateLimitAcrossNodes hammers two nodes at once with alice's key: the
// requests both admit together stay within one bucket (burst + rate ×
// window), not one per node; bob, meanwhile, is admitted on both.
func TestRateLimitAcrossNodes(t *testing.T) {
	auth := fmt.Sprintf(`auth:
  api_keys:
    - {principal: alice, sha256: %s}
    - {principal: bob, sha256: %s}
  rate_limit: {rate: %d, per: 1s, burst: %d}
`, sha256Hex("alice-key"), sha256Hex("bob-key"), limitRate, limitBurst)
	c := newClusterWith(t, onKafka, auth, "a", "b")
	nodes := []*node{c.Node("a"), c.Node("b")}

	// A poll of an unknown id is the cheapest request that is limited: 404
	// when admitted, 429 when not.
	const path = "/v1/requests/0190a8f8-6d6b-7c4e-9a4e-3c2b1a0f9e8d"
	get := func(n *node, key string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, n.URL()+path, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, err
		}
		_ = resp.Body.Close()
		return resp, nil
	}

	const window = 2 * time.Second
	var (
		admitted, refused [2]atomic.Int64
		wg                sync.WaitGroup
		headersOnce       sync.Once
	)
	start := time.Now()
	deadline := start.Add(window)
	for i, n := range nodes {
		for range 4 {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					resp, err := get(n, "alice-key")
					if err != nil {
						t.Errorf("node %s: %v", n.id, err)
						return
					}
					switch resp.StatusCode {
					case http.StatusNotFound:
						admitted[i].Add(1)
					case http.StatusTooManyRequests:
						refused[i].Add(1)
						headersOnce.Do(func() {
							if resp.Header.Get("Retry-After") != "1" || resp.Header.Get("RateLimit") != `"default";r=0;t=1` {
								t.Errorf("429 headers: Retry-After %q, RateLimit %q", resp.Header.Get("Retry-After"), resp.Header.Get("RateLimit"))
							}
						})
					default:
						t.Errorf("node %s answered %d", n.id, resp.StatusCode)
						return
					}
				}
			})
		}
	}
	// Bob, in the middle of alice's flood, has a bucket of his own.
	for _, n := range append(nodes, nodes...) {
		resp, err := get(n, "bob-key")
		if err != nil {
			t.Errorf("bob on node %s: %v", n.id, err)
		} else if resp.StatusCode != http.StatusNotFound {
			t.Errorf("bob on node %s during alice's flood: %d, want 404 (admitted)", n.id, resp.StatusCode)
		}
	}
	wg.Wait()
	elapsed := time.Since(start)

	total := admitted[0].Load() + admitted[1].Load()
	limit := limitBurst + int64(elapsed.Seconds()*limitRate) + limitSlack
	t.Logf("in %s: node a admitted %d and refused %d, node b admitted %d and refused %d; %d admitted, at most %d allowed",
		elapsed.Round(time.Millisecond), admitted[0].Load(), refused[0].Load(), admitted[1].Load(), refused[1].Load(), total, limit)
	if total > limit {
		t.Errorf("%d requests admitted in %s across the nodes, above burst %d + rate %d/s × window + slack %d = %d",
			total, elapsed, limitBurst, limitRate, limitSlack, limit)
	}
	// A limit per node would admit about twice as many. How many more
	// than the burst are admitted depends on how evenly the machine lets
	// the clients send (a loaded one stalls them): the floor is the burst.
	if total < limitBurst {
		t.Errorf("only %d requests admitted in %s, want at least the burst, %d", total, elapsed, limitBurst)
	}
	if admitted[0].Load() == 0 || admitted[1].Load() == 0 || refused[0].Load() == 0 || refused[1].Load() == 0 {
		t.Errorf("each node should have admitted and refused some requests")
	}
}
