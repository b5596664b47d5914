package clustertest

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/internal/testenv"
)

// An event stream opened on node b follows a request sent to node a whose
// progress and reply node c consumes: node c stores each and notifies b,
// which watches the request (Redis pub/sub), so the events reach the
// stream as they happen and not at its next read of the store.
func TestEventStreamOnAnotherNode(t *testing.T) {
	c := newCluster(t, "a", "b", "c")
	svc := startService(t, c, holdAll)
	a, b, cn := c.Node("a"), c.Node("b"), c.Node("c")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	resp, err := c.post(ctx, a, routeEcho, "streamed", "Prefer", "respond-async")
	if err != nil || resp.status != http.StatusAccepted {
		t.Fatalf("request on node a: %d %v, want 202", resp.status, err)
	}
	req := svc.Held(1, 30*time.Second)[0]
	s, sresp := testenv.OpenStream(t, c.http, b.URL()+"/v1/requests/"+resp.id, "")
	if s == nil {
		t.Fatalf("stream on node b: %d", sresp.StatusCode)
	}
	next := func(name, id string) testenv.Event {
		t.Helper()
		ev, err := s.Next(20 * time.Second)
		if err != nil || ev.Name != name || ev.ID != id {
			t.Fatalf("event %+v, %v; want %s (id %s)", ev, err, name, id)
		}
		return ev
	}
	next("pending", "0")
	for i, step := range []string{"half", "almost"} {
		p := envelope.Reply{CorrelationID: req.CorrelationID, Progress: true, ContentType: "text/plain", Body: []byte(step)}
		if err := svc.broker.Publish(ctx, c.replyAddr("c"), p.Message()); err != nil {
			t.Fatal(err)
		}
		ev := next("progress", string(rune('1'+i)))
		var got struct{ Body string }
		if err := json.Unmarshal([]byte(ev.Data), &got); err != nil || got.Body != step {
			t.Errorf("progress %d: %s, want body %q", i+1, ev.Data, step)
		}
	}
	if err := svc.Answer(ctx, req, "c"); err != nil {
		t.Fatal(err)
	}
	ev := next("result", "3")
	var res struct {
		Status int
		Body   string
	}
	if err := json.Unmarshal([]byte(ev.Data), &res); err != nil || res.Status != 200 || res.Body != "streamed" {
		t.Errorf("result %s", ev.Data)
	}
	if ev, err := s.Next(10 * time.Second); err != testenv.ErrStreamEnded {
		t.Errorf("after the result: %+v, %v", ev, err)
	}
	// Node b was woken by node c's notifies (3: two progress messages and
	// the reply), not by reading the store every few seconds.
	if got := c.counts(b).forwards["progress"]; got < 3 {
		t.Errorf("node b took %v notifies, want 3; counts %v", got, c.counts(a, b, cn))
	}
}
