package node_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/api"
	natsb "github.com/syncgate/syncgate/brokers/nats"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

// A node on NATS that accepts bodies above the server's max_payload (1 MiB
// on nats-server's defaults) says at start-up what happens to them, and
// it happens: with JetStream on the server they travel through the object
// store and are answered; in core mode on a server without JetStream they
// are answered 503. A node whose limits fit says nothing.
func TestNATSMaxPayloadWarning(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mode      string
		jetstream bool // on the server
		httpMax   node.ByteSize
		routeMax  node.ByteSize // of the demo's echo route; 0: http.max_body
		want      string        // in the WARN line; "": no line
		setting   string
		status    int // of a POST of a body above max_payload
	}{
		{name: "core, server with JetStream", mode: natsb.ModeCore, jetstream: true, httpMax: 2 << 20,
			want: "travel through the JetStream object store", setting: "http.max_body", status: http.StatusOK},
		{name: "core, server without JetStream", mode: natsb.ModeCore, httpMax: 2 << 20,
			want: "will be answered 503", setting: "http.max_body", status: http.StatusServiceUnavailable},
		{name: "jetstream, a route's limit", mode: natsb.ModeJetStream, jetstream: true, httpMax: 64 << 10, routeMax: 2 << 20,
			want: "travel through the JetStream object store", setting: "routes[0].max_body (route echo)", status: http.StatusOK},
		{name: "limits within max_payload", mode: natsb.ModeCore, httpMax: 512 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testenv.StartNATSServer(t, tc.jetstream)
			cfg := node.Embedded()
			cfg.Addr = "127.0.0.1:0"
			cfg.Node = "nats-payload-" + strconv.Itoa(testenv.FreePort(t))
			cfg.Broker.Kind = "nats"
			cfg.Broker.NATS = natsb.Config{URL: srv.URL, Mode: tc.mode}
			cfg.Shutdown.ReadinessDelay = time.Millisecond
			cfg.HTTP.MaxBody = tc.httpMax
			if tc.routeMax != 0 {
				if cfg.Routes[0].Path != "/demo/echo" {
					t.Fatalf("the embedded configuration's first route is %s, not /demo/echo", cfg.Routes[0].Path)
				}
				cfg.Routes[0].MaxBody = tc.routeMax
			}
			cfg.SetDefaults()
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			var logs testenv.SyncBuffer
			n, err := node.New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			base := "http://" + run(t, n).Addr()

			var lines []string
			for l := range strings.Lines(logs.String()) {
				if strings.Contains(l, "max_payload") && strings.Contains(l, "level=WARN") {
					lines = append(lines, l)
				}
			}
			if tc.want == "" {
				if len(lines) > 0 {
					t.Fatalf("a warning although every limit fits max_payload: %s", lines)
				}
				return
			}
			if len(lines) != 1 || !strings.Contains(lines[0], tc.want) || !strings.Contains(lines[0], "max_payload=1048576") ||
				!strings.Contains(lines[0], tc.setting) {
				t.Fatalf("want one WARN saying %q naming %s, got %q", tc.want, tc.setting, lines)
			}
			t.Logf("%s", lines[0])

			body := bytes.Repeat([]byte("x"), 3<<19) // 1.5 MiB
			resp, got := send(t, "POST", base+"/demo/echo", body, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("a %d-byte body: %d %.200s, want %d", len(body), resp.StatusCode, got, tc.status)
			}
			switch tc.status {
			case http.StatusOK:
				if !bytes.Equal(got, body) {
					t.Fatalf("a %d-byte body answered with %d other bytes", len(body), len(got))
				}
			case http.StatusServiceUnavailable:
				problem(t, resp, got, api.ProblemBrokerDown)
			}
		})
	}
}
