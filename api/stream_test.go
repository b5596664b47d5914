package api_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
)

const streamID = "0193a4b2-7c1d-7e00-8000-00000000abcd"

// A client that does not read its stream is cut off within the write
// timeout once the socket buffers are full: the stream neither blocks for
// ever nor queues events in memory (it reads them from the store as it
// writes them), and it is counted as ended by the client.
func TestEventStreamSlowReaderIsCutOff(t *testing.T) {
	var served atomic.Int64
	big := strings.Repeat("a", 256<<10)
	gw := &stub{events: func(ctx context.Context, id string, after int, d time.Duration) (correlation.Result, error) {
		n := served.Add(1)
		if n > 2000 { // 500 MiB: the cut-off never came
			return correlation.Result{State: correlation.StateDone}, nil
		}
		return correlation.Result{State: correlation.StatePending, Seq: after + 1,
			Progress: []correlation.Progress{{Seq: after + 1, ContentType: "text/plain", Body: []byte(big)}}}, nil
	}}
	reg := prometheus.NewRegistry()
	h := newHandler(t, gw, func(o *api.Options) {
		o.StreamWriteTimeout = 200 * time.Millisecond
		o.Registerer = reg
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /v1/requests/%s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n", streamID)
	// Read the status line only, then stop reading.
	line, err := bufio.NewReaderSize(conn, 16).ReadString('\n')
	if err != nil || !strings.Contains(line, "200") {
		t.Fatalf("status line %q, %v", line, err)
	}
	ended := func() float64 { return streamEnds(reg, "client") }
	deadline := time.Now().Add(20 * time.Second)
	for ended() != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling a metric: no event to wait on
	}
	if ended() != 1 {
		t.Fatalf("the stream of a client that does not read was not cut off (%d events served)", served.Load())
	}
	if n := served.Load(); n >= 2000 {
		t.Errorf("%d reads before the cut-off", n)
	}
	t.Logf("cut off after %d events of 256 KiB", served.Load())
}

// streamEnds returns syncgate_streams_ended_total{reason} from reg.
func streamEnds(reg *prometheus.Registry, reason string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "syncgate_streams_ended_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// An idle stream gets heartbeats; Last-Event-ID that is not a number is
// a 400 problem; a stream whose client had the result gets 204.
func TestEventStreamBasics(t *testing.T) {
	done := correlation.Result{State: correlation.StateDone, Seq: 2}
	gw := &stub{events: func(ctx context.Context, id string, after int, d time.Duration) (correlation.Result, error) {
		if id == streamID {
			return done, nil
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
		return correlation.Result{State: correlation.StatePending, Expires: time.Now().Add(time.Minute)}, nil
	}}
	h := newHandler(t, gw, func(o *api.Options) { o.StreamHeartbeat = 20 * time.Millisecond })
	sse := map[string]string{"Accept": "text/event-stream"}
	if rec := serve(h, "GET", "/v1/requests/"+streamID, "", map[string]string{"Accept": "text/event-stream", "Last-Event-ID": "3"}); rec.Code != http.StatusNoContent {
		t.Errorf("reconnect after the result (3): %d, want 204", rec.Code)
	}
	if rec := serve(h, "GET", "/v1/requests/"+streamID, "", map[string]string{"Accept": "text/event-stream", "Last-Event-ID": "-1"}); rec.Code != http.StatusBadRequest {
		t.Errorf("Last-Event-ID -1: %d, want 400", rec.Code)
	}
	rec := serve(h, "GET", "/v1/requests/"+streamID, "", sse)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/event-stream" ||
		!strings.Contains(rec.Body.String(), "event: result\nid: 3\ndata: {\"status\":200}\n\n") {
		t.Errorf("stream of a done request: %d %q", rec.Code, rec.Body)
	}

	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/requests/0193a4b2-7c1d-7e00-8000-000000000001", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	beats := 0
	for beats < 3 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d heartbeats: %v", beats, err)
		}
		if line == ": keep-alive\n" {
			beats++
		}
	}
}

// A stream served on its own (HTTP/1) keeps its in-flight slot until it
// ends: with max_in_flight 1, a poll is refused while it is open, and
// served once the client left and a heartbeat found it gone.
func TestEventStreamCountsInFlight(t *testing.T) {
	gw := &stub{events: func(ctx context.Context, id string, after int, d time.Duration) (correlation.Result, error) {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
		return correlation.Result{State: correlation.StatePending, Expires: time.Now().Add(time.Minute)}, nil
	}}
	h := newHandler(t, gw, func(o *api.Options) {
		o.StreamHeartbeat = 20 * time.Millisecond
		o.MaxInFlight = 1
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /v1/requests/%s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n", streamID)
	br := bufio.NewReader(conn)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("status line %q, %v", line, err)
	}
	poll := func() int {
		resp, err := http.Get(srv.URL + "/v1/requests/" + streamID)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := poll(); code != http.StatusServiceUnavailable {
		t.Errorf("poll while the stream is open: %d, want 503", code)
	}
	conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	code := poll()
	for code == http.StatusServiceUnavailable && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // until a heartbeat's write fails: nothing to wait on
		code = poll()
	}
	if code != http.StatusNotFound { // the stub knows no result
		t.Errorf("poll after the stream ended: %d, want 404", code)
	}
}

// A stream opened while the result store is down is a 200 stream with an
// error event and retry:, not a 503: an EventSource gives up for good on
// any status but 200 and 204, and must come back once the store does.
func TestEventStreamStoreDown(t *testing.T) {
	gw := &stub{events: func(context.Context, string, int, time.Duration) (correlation.Result, error) {
		return correlation.Result{}, fmt.Errorf("%w: redis: connection refused", gateway.ErrStore)
	}}
	h := newHandler(t, gw, nil)
	rec := serve(h, "GET", "/v1/requests/"+streamID, "", map[string]string{"Accept": "text/event-stream"})
	if body := rec.Body.String(); rec.Code != http.StatusOK || !strings.Contains(body, "event: error\nretry: 1000\ndata: ") ||
		strings.Contains(body, "redis") {
		t.Errorf("stream with the store down: %d %q", rec.Code, body)
	}
}
