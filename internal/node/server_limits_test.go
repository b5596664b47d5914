package node_test

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/internal/node"
)

// The server's own limits come from the configuration: a client that
// stalls its headers is cut off after read_header_timeout, an idle
// keep-alive connection after idle_timeout.
func TestServerTimeouts(t *testing.T) {
	cfg := testConfig()
	cfg.HTTP.ReadHeaderTimeout = 200 * time.Millisecond
	cfg.HTTP.IdleTimeout = 300 * time.Millisecond
	n := start(t, cfg)

	closedWithin := func(t *testing.T, conn net.Conn, limit time.Duration) {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(limit)) // bounds the test
		buf := make([]byte, 4096)
		for {
			if _, err := conn.Read(buf); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("connection still open after %v", limit)
				}
				return // closed by the server
			}
		}
	}
	t.Run("read_header_timeout", func(t *testing.T) {
		conn, err := net.Dial("tcp", n.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = conn.Write([]byte("POST /demo/echo HTTP/1.1\r\nHost: x\r\n")) // and then nothing
		closedWithin(t, conn, 10*time.Second)
	})
	t.Run("idle_timeout", func(t *testing.T) {
		conn, err := net.Dial("tcp", n.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", resp, err)
		}
		resp.Body.Close()
		closedWithin(t, conn, 10*time.Second)
	})
}

func TestLimitsWired(t *testing.T) {
	cfg := testConfig()
	cfg.HTTP.MaxHeaderBytes = 2048
	cfg.HTTP.MaxWait = time.Minute
	cfg.Routes = append(cfg.Routes, node.RouteConfig{Name: "capped", Method: "POST", Path: "/t/capped",
		Destination: "demo.sleep", Mode: "auto", Wait: time.Second, Timeout: 30 * time.Second, MaxWait: 1500 * time.Millisecond})
	n := start(t, cfg)

	resp, body := send(t, "POST", n.base+"/demo/echo", []byte("x"), map[string]string{"X-Pad": strings.Repeat("a", 3000)})
	problem(t, resp, body, api.ProblemHeaderTooLarge)

	start := time.Now()
	resp, _ = send(t, "POST", n.base+"/t/capped?ms=20000", []byte("x"), map[string]string{"Prefer": "wait=20"})
	if resp.StatusCode != 202 || resp.Header.Get("Preference-Applied") != "wait=2" || time.Since(start) > 10*time.Second {
		t.Fatalf("Prefer: wait=20 on a route capped at 1.5s: %d %q after %v", resp.StatusCode, resp.Header.Get("Preference-Applied"), time.Since(start))
	}
}
