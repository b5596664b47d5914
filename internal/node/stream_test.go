package node_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/syncgate/syncgate/brokers/kafka"
	"github.com/syncgate/syncgate/brokers/responder/demo"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

// streamConfig is testConfig with routes to the demo's sleep service that
// sends progress (?ms=&steps=): async, auto waiting 500 ms, and async with
// a 1 s timeout.
func streamConfig() node.Config {
	cfg := testConfig()
	cfg.Routes = append(cfg.Routes,
		node.RouteConfig{Name: "steps", Method: "POST", Path: "/t/steps", Destination: "demo.sleep", Mode: "async", Timeout: 20 * time.Second},
		node.RouteConfig{Name: "steps-auto", Method: "POST", Path: "/t/steps-auto", Destination: "demo.sleep", Mode: "auto", Wait: 500 * time.Millisecond, Timeout: 20 * time.Second},
		node.RouteConfig{Name: "steps-brief", Method: "POST", Path: "/t/steps-brief", Destination: "demo.sleep", Mode: "async", Timeout: time.Second},
	)
	return cfg
}

// accepted sends a request that is answered 202 and returns its Location.
func accepted(t *testing.T, url string, body string) string {
	t.Helper()
	resp, b := send(t, "POST", url, []byte(body), map[string]string{"Content-Type": "text/plain"})
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Location") == "" {
		t.Fatalf("POST %s: %d %s, want 202 with a Location", url, resp.StatusCode, b)
	}
	return resp.Header.Get("Location")
}

// nextEvent returns the stream's next event and checks its name and id
// ("" for none).
func nextEvent(t *testing.T, s *testenv.EventStream, name, id string) testenv.Event {
	t.Helper()
	ev, err := s.Next(10 * time.Second)
	if err != nil {
		t.Fatalf("waiting for event %s (id %q): %v", name, id, err)
	}
	if ev.Name != name || ev.ID != id {
		t.Fatalf("event %s (id %q) %s, want %s (id %q)", ev.Name, ev.ID, ev.Data, name, id)
	}
	return ev
}

// checkStep checks that a progress event is the demo's step i of n.
func checkStep(t *testing.T, ev testenv.Event, seq, i, n int) {
	t.Helper()
	var p struct {
		Seq         int    `json:"seq"`
		ContentType string `json:"content_type"`
		Body        string `json:"body"`
	}
	if err := json.Unmarshal([]byte(ev.Data), &p); err != nil {
		t.Fatalf("progress data %s: %v", ev.Data, err)
	}
	want := fmt.Sprintf(`{"step":%d,"of":%d}`, i, n)
	if p.Seq != seq || p.ContentType != "application/json" || p.Body != want {
		t.Fatalf("progress %s, want seq %d body %s", ev.Data, seq, want)
	}
}

// checkResult checks that a result event holds a 200 reply with body.
func checkResult(t *testing.T, ev testenv.Event, body string) {
	t.Helper()
	var r struct {
		Status      int    `json:"status"`
		ContentType string `json:"content_type"`
		Body        string `json:"body"`
	}
	if err := json.Unmarshal([]byte(ev.Data), &r); err != nil {
		t.Fatalf("result data %s: %v", ev.Data, err)
	}
	if r.Status != 200 || r.ContentType != "text/plain" || r.Body != body {
		t.Fatalf("result %s, want 200 text/plain %q", ev.Data, body)
	}
}

func streamEnds(t *testing.T, s *testenv.EventStream) {
	t.Helper()
	if ev, err := s.Next(10 * time.Second); err != testenv.ErrStreamEnded {
		t.Fatalf("after the last event: %+v, %v; want the stream to end", ev, err)
	}
}

// A request's event stream: pending, each progress message in order, the
// result, and the end; the poll's 202 shows the latest progress; a
// stream opened later replays the kept progress and the result; once the
// client has had the result, a reconnect gets 204.
func TestEventStream(t *testing.T) {
	checkEventStream(t, start(t, streamConfig()).base)
}

// The same over Kafka (kfake), the demo service in process: the progress
// messages come back on the node's reply topic with the reply.
func TestEventStreamKafka(t *testing.T) {
	port := testenv.FreePort(t)
	kf, err := kfake.NewCluster(kfake.Ports(port), kfake.NumBrokers(1),
		kfake.SeedTopics(4, demo.EchoDestination, demo.SleepDestination))
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()
	cfg := streamConfig()
	cfg.Node = "stream-" + strconv.Itoa(port)
	cfg.Broker.Kind = "kafka"
	cfg.Broker.Kafka = kafka.Config{Brokers: []string{"127.0.0.1:" + strconv.Itoa(port)}}
	base := start(t, cfg).base
	checkEventStream(t, base)
	checkResume(t, base)
}

func checkEventStream(t *testing.T, base string) {
	loc := accepted(t, base+"/t/steps?ms=1500&steps=3", "hello")
	s := mustStream(t, http.DefaultClient, base+loc, "")
	if s.Resp.Header.Get("Cache-Control") != "no-cache" || s.Resp.Header.Get(httpCorrelationID) == "" {
		t.Errorf("stream headers %v", s.Resp.Header)
	}
	nextEvent(t, s, "pending", "0")
	checkStep(t, nextEvent(t, s, "progress", "1"), 1, 1, 3)

	// The poll, between two progress messages 500 ms apart.
	presp, pb := send(t, "GET", base+loc, nil, nil)
	var pending struct {
		Status   string `json:"status"`
		Progress struct {
			Seq  int    `json:"seq"`
			Body string `json:"body"`
		} `json:"progress"`
	}
	if err := json.Unmarshal(pb, &pending); err != nil || presp.StatusCode != http.StatusAccepted ||
		pending.Status != "pending" || pending.Progress.Seq != 1 || pending.Progress.Body != `{"step":1,"of":3}` {
		t.Errorf("poll after progress 1: %d %s (%v), want 202 with progress 1", presp.StatusCode, pb, err)
	}

	checkStep(t, nextEvent(t, s, "progress", "2"), 2, 2, 3)
	checkResult(t, nextEvent(t, s, "result", "3"), "hello")
	streamEnds(t, s)

	later := mustStream(t, http.DefaultClient, base+loc, "")
	checkStep(t, nextEvent(t, later, "progress", "1"), 1, 1, 3)
	checkStep(t, nextEvent(t, later, "progress", "2"), 2, 2, 3)
	checkResult(t, nextEvent(t, later, "result", "3"), "hello")
	streamEnds(t, later)

	if _, resp := testenv.OpenStream(t, http.DefaultClient, base+loc, "3"); resp.StatusCode != http.StatusNoContent {
		t.Errorf("reconnect after the result: %d, want 204", resp.StatusCode)
	} else {
		resp.Body.Close()
	}
}

// checkResume drops a stream after its first progress event and resumes
// it with Last-Event-ID; it returns the request's Location.
func checkResume(t *testing.T, base string) string {
	t.Helper()
	loc := accepted(t, base+"/t/steps?ms=1200&steps=4", "resumed")
	s := mustStream(t, http.DefaultClient, base+loc, "")
	nextEvent(t, s, "pending", "0")
	checkStep(t, nextEvent(t, s, "progress", "1"), 1, 1, 4)
	s.Close() // the connection drops

	again := mustStream(t, http.DefaultClient, base+loc, "1")
	checkStep(t, nextEvent(t, again, "progress", "2"), 2, 2, 4)
	checkStep(t, nextEvent(t, again, "progress", "3"), 3, 3, 4)
	checkResult(t, nextEvent(t, again, "result", "4"), "resumed")
	streamEnds(t, again)
	return loc
}

// httpCorrelationID is the header that names the request.
const httpCorrelationID = "X-Correlation-Id"

// A client that drops its stream and reconnects with Last-Event-ID gets
// every later event once: no loss, no repeats.
func TestEventStreamResumes(t *testing.T) {
	n := start(t, streamConfig())
	loc := checkResume(t, n.base)
	if _, resp := testenv.OpenStream(t, http.DefaultClient, n.base+loc, "x"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("Last-Event-ID x: %d, want 400", resp.StatusCode)
	} else {
		resp.Body.Close()
	}
}

// Progress sent while an auto request still holds its connection is kept
// (the latest) when it is answered 202, ahead of the later ones; a sync
// route ignores progress and answers with the reply.
func TestEventStreamProgressBefore202(t *testing.T) {
	n := start(t, streamConfig())
	// Steps every 300 ms: step 1 comes before the 202 at 500 ms.
	loc := accepted(t, n.base+"/t/steps-auto?ms=1500&steps=5", "auto")
	s := mustStream(t, http.DefaultClient, n.base+loc, "")
	nextEvent(t, s, "pending", "0")
	for i := 1; i <= 4; i++ {
		checkStep(t, nextEvent(t, s, "progress", strconv.Itoa(i)), i, i, 5)
	}
	checkResult(t, nextEvent(t, s, "result", "5"), "auto")
	streamEnds(t, s)

	resp, b := send(t, "POST", n.base+"/demo/sleep-sync?ms=300&steps=3", []byte("sync"), map[string]string{"Content-Type": "text/plain"})
	if resp.StatusCode != http.StatusOK || string(b) != "sync" {
		t.Errorf("sync route with progress: %d %s, want 200 sync", resp.StatusCode, b)
	}
}

// A stream ends with an event: cancelled on DELETE, timeout at the
// request's timeout; idle, it gets heartbeats; a cancelled request's
// stream is a 410 problem, an unknown one's 404.
func TestEventStreamEnds(t *testing.T) {
	cfg := streamConfig()
	cfg.HTTP.StreamHeartbeat = 50 * time.Millisecond
	n := start(t, cfg)

	loc := accepted(t, n.base+"/t/steps?ms=10000", "cancel me")
	s := mustStream(t, http.DefaultClient, n.base+loc, "")
	nextEvent(t, s, "pending", "0")
	if !s.Comment(5 * time.Second) {
		t.Error("no heartbeat on an idle stream")
	}
	if resp, b := send(t, "DELETE", n.base+loc, nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, b)
	}
	nextEvent(t, s, "cancelled", "")
	streamEnds(t, s)
	if _, resp := testenv.OpenStream(t, http.DefaultClient, n.base+loc, ""); resp.StatusCode != http.StatusGone {
		t.Errorf("stream of a cancelled request: %d, want 410", resp.StatusCode)
	} else {
		resp.Body.Close()
	}

	loc = accepted(t, n.base+"/t/steps-brief?ms=5000", "too slow")
	s = mustStream(t, http.DefaultClient, n.base+loc, "")
	nextEvent(t, s, "pending", "0")
	ev := nextEvent(t, s, "timeout", "")
	var end struct{ ID, Status string }
	if err := json.Unmarshal([]byte(ev.Data), &end); err != nil || end.Status != "timeout" || n.base+"/v1/requests/"+end.ID != n.base+loc {
		t.Errorf("timeout event %s", ev.Data)
	}
	streamEnds(t, s)

	if _, resp := testenv.OpenStream(t, http.DefaultClient, n.base+"/v1/requests/0193a4b2-7c1d-7e00-8000-000000000000", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("stream of an unknown id: %d, want 404", resp.StatusCode)
	} else {
		resp.Body.Close()
	}
}

// At shutdown a stream ends at once with a shutdown event that tells the
// client when to reconnect, rather than holding the drain.
func TestEventStreamShutdown(t *testing.T) {
	cfg := streamConfig()
	cfg.Shutdown.DrainTimeout = 20 * time.Second
	n := start(t, cfg)
	loc := accepted(t, n.base+"/t/steps?ms=15000", "held")
	s := mustStream(t, http.DefaultClient, n.base+loc, "")
	nextEvent(t, s, "pending", "0")
	stopped := make(chan error, 1)
	began := time.Now()
	go func() { stopped <- n.stop() }()
	ev := nextEvent(t, s, "shutdown", "")
	if ev.Retry == "" {
		t.Errorf("shutdown event without retry: %+v", ev)
	}
	streamEnds(t, s)
	if err := <-stopped; err != nil {
		t.Errorf("Run: %v", err)
	}
	// The stream did not hold the drain (20 s).
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("shutdown took %v", d)
	}
}

// The same over RabbitMQ, the service on its own connection: the progress
// messages come back on the node's reply queue, in order with the reply.
func TestEventStreamRabbitMQ(t *testing.T) {
	e := newE2E(t, rabbitE2EConfig(t), "async", 20*time.Second, demo.Sleep, 4)
	loc := accepted(t, e.base+"/call?ms=900&steps=3", "over amqp")
	s := mustStream(t, e.client, e.base+loc, "")
	nextEvent(t, s, "pending", "0")
	checkStep(t, nextEvent(t, s, "progress", "1"), 1, 1, 3)
	checkStep(t, nextEvent(t, s, "progress", "2"), 2, 2, 3)
	checkResult(t, nextEvent(t, s, "result", "3"), "over amqp")
	streamEnds(t, s)
}

// mustStream opens the event stream at url (resuming after lastID when it
// is not empty) and fails the test when the answer is not a stream.
func mustStream(t *testing.T, client *http.Client, url, lastID string) *testenv.EventStream {
	t.Helper()
	s, resp := testenv.OpenStream(t, client, url, lastID)
	if s == nil {
		resp.Body.Close()
		t.Fatalf("GET %s as an event stream: %d %s", url, resp.StatusCode, resp.Header)
	}
	return s
}
