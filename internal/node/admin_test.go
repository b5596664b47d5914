package node_test

import (
	"net/http"
	"strings"
	"testing"
)

// With admin_addr, /metrics moves to the admin listener; the health
// probes stay on the API listener for load balancers (issue 16, point 8).
func TestAdminListener(t *testing.T) {
	cfg := testConfig()
	cfg.AdminAddr = "127.0.0.1:0"
	r := start(t, cfg)
	if r.AdminAddr() == "" || r.AdminAddr() == r.Node.Addr() {
		t.Fatalf("admin address %q", r.AdminAddr())
	}
	admin := "http://" + r.AdminAddr()
	for _, tc := range []struct {
		url    string
		status int
		has    string
	}{
		{r.base + "/metrics", http.StatusNotFound, ""},
		{admin + "/metrics", http.StatusOK, "syncgate_waiting_requests"},
		{r.base + "/healthz", http.StatusOK, "ok"},
		{r.base + "/readyz", http.StatusOK, "ok"},
		{admin + "/readyz?verbose", http.StatusOK, "ok"},
		{admin + "/healthz", http.StatusOK, "ok"},
		{admin + "/demo/echo", http.StatusNotFound, ""},
	} {
		resp, body := send(t, "GET", tc.url, nil, nil)
		if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.has) {
			t.Errorf("GET %s: %d, want %d with %q", tc.url, resp.StatusCode, tc.status, tc.has)
		}
	}
}

func TestNoAdminListenerByDefault(t *testing.T) {
	r := start(t, testConfig())
	if r.AdminAddr() != "" {
		t.Fatalf("admin address %q without admin_addr", r.AdminAddr())
	}
	if resp, _ := send(t, "GET", r.base+"/metrics", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics on the API listener: %d", resp.StatusCode)
	}
}
