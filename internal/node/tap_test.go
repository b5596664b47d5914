package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/syncgate/syncgate/brokers/kafka"
	"github.com/syncgate/syncgate/brokers/responder/demo"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
	"github.com/syncgate/syncgate/replay"
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
	var got []tap.Exchange
	if err := replay.ReadJSONL(context.Background(), []string{path}, replay.Filter{}, func(x tap.Exchange) error {
		got = append(got, x)
		return nil
	}); err != nil {
		t.Fatal(err)
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

// A broker sink on Kafka (kfake): each exchange of the tapped route is a
// JSON message on the topic, keyed by its correlation id.
func TestTapToKafkaTopic(t *testing.T) {
	port := testenv.FreePort(t)
	kf, err := kfake.NewCluster(kfake.Ports(port), kfake.NumBrokers(1),
		kfake.SeedTopics(2, demo.EchoDestination, demo.SleepDestination, "syncgate.exchanges"))
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cfg := testConfig()
	cfg.Node = "tap-" + strconv.Itoa(port)
	cfg.Broker.Kind = "kafka"
	cfg.Broker.Kafka = kafka.Config{Brokers: []string{addr}}
	cfg.Taps.Sinks = []node.TapSinkConfig{{Name: "topic", Kind: "broker", Destination: "syncgate.exchanges"}}
	for i := range cfg.Routes {
		if cfg.Routes[i].Path == "/demo/echo" {
			cfg.Routes[i].Tap = &node.RouteTapConfig{Sinks: []string{"topic"}}
		}
	}
	n := start(t, cfg)
	ids := map[string]bool{}
	for i := range 5 {
		r, body := send(t, "POST", n.base+"/demo/echo", []byte("m"+strconv.Itoa(i)), map[string]string{"Content-Type": "text/plain"})
		if r.StatusCode != http.StatusOK {
			t.Fatalf("echo: %d %s", r.StatusCode, body)
		}
		ids[r.Header.Get("X-Correlation-Id")] = true
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("syncgate.exchanges"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	seen := 0
	for seen < len(ids) && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var x tap.Exchange
			if err := json.Unmarshal(r.Value, &x); err != nil {
				t.Errorf("record %s: %v", r.Value, err)
				return
			}
			if !ids[x.CorrelationID] || string(r.Key) != x.CorrelationID || x.Route != "echo" || x.Status != 200 {
				t.Errorf("record key %s: %+v", r.Key, x)
			}
			seen++
		})
	}
	if seen != len(ids) {
		t.Errorf("%d exchanges on the topic, want %d", seen, len(ids))
	}
}

// A postgres sink: the node creates the table at its first write; every
// exchange of the tapped route is a row, found by correlation id.
func TestTapToPostgres(t *testing.T) {
	url := testenv.RequirePostgres(t)
	table := testenv.PostgresTable(t, url, "tap_node")
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	cfg := testConfig()
	cfg.Taps.Sinks = []node.TapSinkConfig{{Name: "db", Kind: "postgres", URL: url, Table: table}}
	for i := range cfg.Routes {
		if cfg.Routes[i].Path == "/demo/echo" {
			cfg.Routes[i].Tap = &node.RouteTapConfig{Sinks: []string{"db"}}
		}
	}
	n := start(t, cfg)
	var ids []string
	for i := range 3 {
		r, _ := send(t, "POST", n.base+"/demo/echo", []byte("row "+strconv.Itoa(i)), nil)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("echo: %d", r.StatusCode)
		}
		ids = append(ids, r.Header.Get("X-Correlation-Id"))
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		var route string
		var status int
		if err := conn.QueryRow(ctx, "SELECT route, status FROM "+table+" WHERE correlation_id = $1", id).Scan(&route, &status); err != nil || route != "echo" || status != 200 {
			t.Errorf("row of %s: %s %d, %v", id, route, status, err)
		}
	}
}

// A sink that hangs (a JSONL path on a FIFO nobody reads: the open blocks
// for good, as on a hung NFS mount) fills its queue; from then on its
// exchanges are dropped and counted, requests are served as before, and
// the node still stops, leaving the sink behind.
func TestTapStuckSinkDoesNotHoldRequests(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "exchanges.jsonl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	t.Cleanup(func() {
		// Read the FIFO, so that the writer left behind finishes its open,
		// writes and ends before goleak looks: until it closes its end
		// (EOF after data), 10 s at most.
		f, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return
		}
		defer f.Close()
		_ = f.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 64<<10)
		read := 0
		for {
			n, err := f.Read(buf)
			read += n
			if err != nil && (read > 0 || !errors.Is(err, io.EOF)) {
				return
			}
			if n == 0 {
				time.Sleep(time.Millisecond) // no writer yet: poll, the FIFO has no event for it
			}
		}
	})
	cfg := testConfig()
	cfg.Shutdown.DrainTimeout = time.Second
	cfg.Taps.Flush = 200 * time.Millisecond
	cfg.Taps.Sinks = []node.TapSinkConfig{{Name: "stuck", Kind: "jsonl", Path: fifo, Queue: 10}}
	for i := range cfg.Routes {
		if cfg.Routes[i].Path == "/demo/echo" {
			cfg.Routes[i].Tap = &node.RouteTapConfig{Sinks: []string{"stuck"}}
		}
	}
	n := start(t, cfg)
	for range 100 {
		if r, _ := send(t, "POST", n.base+"/demo/echo", []byte("x"), nil); r.StatusCode != http.StatusOK {
			t.Fatalf("echo with a stuck sink: %d", r.StatusCode)
		}
	}
	dropped := scrape(t, n.base)["syncgate_tap_dropped_total"]
	if dropped == nil || dropped.GetMetric()[0].GetCounter().GetValue() < 100-10-256 {
		t.Errorf("dropped: %v, want the exchanges past the queue", dropped)
	}
	began := time.Now()
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("stopping took %v with a stuck sink", d)
	}
}
