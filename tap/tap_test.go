package tap_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/syncgate/syncgate/tap"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memSink keeps what it is given; while gate is set, Write waits on it.
type memSink struct {
	mu     sync.Mutex
	got    []tap.Exchange
	gate   chan struct{}
	closed bool
}

func (s *memSink) Write(ctx context.Context, batch []tap.Exchange) error {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, batch...)
	return nil
}

func (s *memSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *memSink) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.got))
	for i, x := range s.got {
		out[i] = x.CorrelationID
	}
	return out
}

func metric(t *testing.T, reg *prometheus.Registry, name, sink string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "sink" && l.GetValue() == sink {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{sink=%q}", name, sink)
	return 0
}

func run(t *testing.T, tp *tap.Tap) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tp.Run(ctx, 5*time.Second) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// Exchanges reach every sink in the order they were recorded; a sink that
// is stuck fills its queue, after which its exchanges are dropped and
// counted, while Record returns at once and the other sink gets them all;
// what is queued at shutdown is written before the sinks close.
func TestTapDropsForAStuckSinkOnly(t *testing.T) {
	reg := prometheus.NewRegistry()
	good, stuck := &memSink{}, &memSink{gate: make(chan struct{})}
	tp, err := tap.New(tap.Config{Registerer: reg, Sinks: []tap.SinkConfig{
		{Name: "good", Sink: good, Queue: 1000},
		{Name: "stuck", Sink: stuck, Queue: 10},
	}})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, tp)
	const n = 500
	want := make([]string, n)
	for i := range n {
		want[i] = strings.Repeat("x", i%7) + string(rune('a'+i%26))
		tp.Record(tap.Exchange{CorrelationID: want[i]})
	}
	// The stuck sink holds at most a batch in Write and 10 in its queue.
	dropped := metric(t, reg, "syncgate_tap_dropped_total", "stuck")
	if dropped < n-10-256 || dropped > n-10 {
		t.Errorf("stuck sink dropped %v of %d, want all but its queue and the batch in Write", dropped, n)
	}
	if q := metric(t, reg, "syncgate_tap_queued", "stuck"); q > 10 {
		t.Errorf("stuck sink queued %v, more than its queue (10)", q)
	}
	close(stuck.gate)
	stop()
	if got := good.ids(); len(got) != n || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("good sink got %d exchanges, want %d in order", len(got), n)
	}
	if got := len(stuck.ids()); float64(got)+dropped != n {
		t.Errorf("stuck sink wrote %d and dropped %v, want %d together", got, dropped, n)
	}
	if w := metric(t, reg, "syncgate_tap_written_total", "good"); w != n {
		t.Errorf("written %v, want %d", w, n)
	}
	if !good.closed || !stuck.closed {
		t.Error("sinks not closed after Run")
	}
}

// A blocking sink makes Record wait for room, up to BlockFor, then drop.
func TestTapBlockingSink(t *testing.T) {
	reg := prometheus.NewRegistry()
	slow := &memSink{gate: make(chan struct{})}
	tp, err := tap.New(tap.Config{Registerer: reg, Batch: 1, Sinks: []tap.SinkConfig{
		{Name: "slow", Sink: slow, Queue: 1, Block: true, BlockFor: 50 * time.Millisecond},
	}})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, tp)
	tp.Record(tap.Exchange{CorrelationID: "1"}) // taken into Write, waits on the gate
	tp.Record(tap.Exchange{CorrelationID: "2"}) // queued
	released := make(chan struct{})
	go func() {
		defer close(released)
		tp.Record(tap.Exchange{CorrelationID: "3"}) // waits for room: the gate opens
	}()
	slow.gate <- struct{}{} // Write of 1 returns; 2 moves into Write; 3 gets its room
	<-released
	close(slow.gate)
	stop()
	if got := strings.Join(slow.ids(), ","); got != "1,2,3" {
		t.Errorf("blocking sink got %s, want 1,2,3", got)
	}
	if d := metric(t, reg, "syncgate_tap_dropped_total", "slow"); d != 0 {
		t.Errorf("dropped %v, want 0", d)
	}
}

// Capture leaves out the redacted headers and caps the body.
func TestCapture(t *testing.T) {
	r := httptest.NewRequest("POST", "/orders/7?x=1", nil)
	r.Header.Set("Authorization", "Bearer secret")
	r.Header.Set("Cookie", "s=1")
	r.Header.Set("X-Request-Id", "abc")
	req := tap.Capture(r, []byte("0123456789"), tap.RedactSet([]string{"authorization", " cookie"}), 4)
	if req.Method != "POST" || req.Path != "/orders/7" || req.Query != "x=1" || string(req.Body) != "0123" || !req.BodyTruncated {
		t.Errorf("captured %+v", req)
	}
	if _, ok := req.Header["Authorization"]; ok || req.Header["Cookie"] != nil || req.Header["X-Request-Id"][0] != "abc" {
		t.Errorf("headers %v", req.Header)
	}
	if req := tap.Capture(r, []byte("0123"), nil, 0); req.Body != nil || !req.BodyTruncated {
		t.Errorf("max 0: %+v", req)
	}
	if req := tap.Capture(r, []byte("0123"), nil, -1); string(req.Body) != "0123" || req.BodyTruncated {
		t.Errorf("max -1: %+v", req)
	}
}

// blockedSink's Write never returns until released, whatever its context.
type blockedSink struct{ release chan struct{} }

func (s blockedSink) Write(context.Context, []tap.Exchange) error { <-s.release; return nil }
func (blockedSink) Close() error                                  { return nil }

// A sink stuck in a write its context cannot end is left behind a second
// after the flush time, with an error that names it: it never holds the
// shutdown.
func TestTapRunLeavesAStuckSinkBehind(t *testing.T) {
	stuck := blockedSink{release: make(chan struct{})}
	defer close(stuck.release) // lets the left-behind writer end before goleak looks
	ok := &memSink{}
	tp, err := tap.New(tap.Config{Sinks: []tap.SinkConfig{{Name: "nfs", Sink: stuck}, {Name: "ok", Sink: ok}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tp.Run(ctx, 100*time.Millisecond) }()
	tp.Record(tap.Exchange{CorrelationID: "1"})
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "sink nfs is stuck") {
			t.Errorf("Run: %v, want the stuck sink named", err)
		}
		// The sink that finished is closed, not reported stuck too.
		if err != nil && strings.Contains(err.Error(), "sink ok") {
			t.Errorf("Run: %v, reports the sink that finished", err)
		}
		ok.mu.Lock()
		closed := ok.closed
		ok.mu.Unlock()
		if !closed {
			t.Error("the sink that finished was not closed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run held by a stuck sink")
	}
}
