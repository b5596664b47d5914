package node_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/tap"
)

// A route's exchanges reach its JSONL sink: the request as it came
// without the redacted headers, the outcome (a reply, a 202, a 504), the
// reply and timings; a route without a tap is not recorded; what is
// queued at shutdown is written.
func TestTapJSONL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exchanges.jsonl")
	cfg := testConfig()
	cfg.Taps.Sinks = []node.TapSinkConfig{{Name: "audit", Kind: "jsonl", Path: path}}
	for i := range cfg.Routes {
		switch cfg.Routes[i].Path {
		case "/demo/echo", "/t/sync", "/t/async/{id}":
			cfg.Routes[i].Tap = &node.RouteTapConfig{Sinks: []string{"audit"}, MaxBody: 8}
		}
	}
	n := start(t, cfg)
	h := map[string]string{"Authorization": "Bearer secret", "Content-Type": "text/plain", "X-Request-Id": "req-1"}
	if r, _ := send(t, "POST", n.base+"/demo/echo?x=1", []byte("hello, tap"), h); r.StatusCode != http.StatusOK {
		t.Fatalf("echo: %d", r.StatusCode)
	}
	if r, _ := send(t, "POST", n.base+"/t/sync?ms=5000", []byte("slow"), nil); r.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("sync: %d", r.StatusCode)
	}
	if r, _ := send(t, "PUT", n.base+"/t/async/7", []byte("later"), nil); r.StatusCode != http.StatusAccepted {
		t.Fatalf("async: %d", r.StatusCode)
	}
	if r, _ := send(t, "POST", n.base+"/t/small", []byte("untapped"), nil); r.StatusCode != http.StatusOK {
		t.Fatalf("small: %d", r.StatusCode)
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []tap.Exchange
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var x tap.Exchange
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			t.Fatalf("line %s: %v", sc.Text(), err)
		}
		got = append(got, x)
	}
	if len(got) != 3 {
		t.Fatalf("%d exchanges recorded, want 3 (the untapped route's not)", len(got))
	}
	echo, sync, async := got[0], got[1], got[2]
	if echo.Route != "echo" || echo.Node != "test" || echo.Status != 200 || echo.Outcome != "reply" || echo.CorrelationID == "" ||
		echo.RequestID != "req-1" || echo.Request.Method != "POST" || echo.Request.Path != "/demo/echo" || echo.Request.Query != "x=1" ||
		string(echo.Request.Body) != "hello, t" || !echo.Request.BodyTruncated || echo.Reply == nil || string(echo.Reply.Body) != "hello, t" ||
		echo.DurationMS <= 0 || echo.BrokerMS <= 0 || echo.Time.IsZero() {
		t.Errorf("echo exchange %+v (reply %+v)", echo, echo.Reply)
	}
	if _, ok := echo.Request.Header["Authorization"]; ok || echo.Request.Header["X-Request-Id"][0] != "req-1" {
		t.Errorf("echo headers %v: Authorization must be redacted", echo.Request.Header)
	}
	if sync.Status != http.StatusGatewayTimeout || sync.Outcome != "timeout" || sync.Reply != nil {
		t.Errorf("sync exchange %+v", sync)
	}
	if async.Status != http.StatusAccepted || async.Outcome != "accepted" || async.Request.Path != "/t/async/7" {
		t.Errorf("async exchange %+v", async)
	}
}
