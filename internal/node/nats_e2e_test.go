package node_test

import (
	"net"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	natsb "github.com/syncgate/syncgate/brokers/nats"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

// natsURL is the NATS server of the tests: SYNCGATE_NATS_URL, or the
// default; the test fails under CI=true, and skips elsewhere, without it.
func natsURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("SYNCGATE_NATS_URL")
	if u == "" {
		u = natsb.DefaultURL
	}
	p, err := url.Parse(u)
	if err == nil {
		var c net.Conn
		if c, err = net.DialTimeout("tcp", p.Host, 2*time.Second); err == nil {
			_ = c.Close()
			return u
		}
	}
	testenv.Unavailable(t, "this test needs nats at %s (nats-server -js; SYNCGATE_NATS_URL names another): %v", u, err)
	return ""
}

// broker.kind nats: the embedded demo answers through a real NATS server
// (core mode), sync and async, and /readyz names no broker trouble.
func TestNodeOnNATS(t *testing.T) {
	cfg := node.Embedded()
	cfg.Addr = "127.0.0.1:0"
	cfg.Node = "nats-e2e-" + strconv.Itoa(testenv.FreePort(t))
	cfg.Broker.Kind = "nats"
	cfg.Broker.NATS = natsb.Config{URL: natsURL(t)}
	cfg.Shutdown.ReadinessDelay = time.Millisecond
	n := start(t, cfg)
	if resp, body := send(t, "POST", n.base+"/demo/echo", []byte("over nats"), nil); resp.StatusCode != 200 || string(body) != "over nats" {
		t.Fatalf("echo: %d %q", resp.StatusCode, body)
	}
	resp, body := send(t, "POST", n.base+"/demo/echo", []byte("later"), map[string]string{"Prefer": "respond-async"})
	if resp.StatusCode != 202 {
		t.Fatalf("respond-async: %d %s", resp.StatusCode, body)
	}
	loc := resp.Header.Get("Location")
	testenv.Eventually(t, 10*time.Second, "the async reply is stored", func() bool {
		r, b := send(t, "GET", n.base+loc, nil, nil)
		return r.StatusCode == 200 && string(b) == "later"
	})
	if resp, body := send(t, "GET", n.base+"/readyz", nil, nil); resp.StatusCode != 200 {
		t.Errorf("/readyz: %d %s", resp.StatusCode, body)
	}
}
