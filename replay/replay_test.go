package replay_test

import (
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/testenv"
	"github.com/syncgate/syncgate/replay"
	"github.com/syncgate/syncgate/tap"
	"github.com/syncgate/syncgate/tap/jsonl"
	"github.com/syncgate/syncgate/tap/pgsink"
)

var t0 = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

// exchanges: one a minute from 10:00, statuses cycling 200, 502, 504, 202.
func exchanges() []tap.Exchange {
	statuses := []int{200, 502, 504, 202}
	var xs []tap.Exchange
	for i := range 20 {
		xs = append(xs, tap.Exchange{Time: t0.Add(time.Duration(i) * time.Minute), Route: []string{"orders", "pay"}[i%2],
			CorrelationID: "id-" + string(rune('a'+i)), Status: statuses[i%4],
			Request: tap.Request{Method: "POST", Path: "/orders", Query: "n=1", Body: []byte{byte(i)},
				Header: map[string][]string{"Content-Type": {"application/octet-stream"}, "Idempotency-Key": {"k"}, "X-Tenant": {"7"}}}})
	}
	return xs
}

func TestFilter(t *testing.T) {
	x := &tap.Exchange{Time: t0.Add(5 * time.Minute), Route: "orders", CorrelationID: "a", Status: 504}
	for _, tc := range []struct {
		f    replay.Filter
		want bool
	}{
		{replay.Filter{}, true},
		{replay.Filter{Routes: []string{"pay"}}, false},
		{replay.Filter{Since: t0.Add(2 * time.Minute), Until: t0.Add(17 * time.Minute)}, true},
		{replay.Filter{Until: t0.Add(5 * time.Minute)}, false}, // until is exclusive
		{replay.Filter{Statuses: []string{"5xx"}}, true},
		{replay.Filter{Statuses: []string{"4xx", "502"}}, false},
		{replay.Filter{Statuses: []string{"504"}}, true},
		{replay.Filter{IDs: []string{"b"}}, false},
	} {
		if got := tc.f.Match(x); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.f, got, tc.want)
		}
	}
	for s, ok := range map[string]bool{"5xx": true, "2xx": true, "504": true, "6xx": false, "5x": false, "abc": false, "99": false} {
		if replay.ValidStatus(s) != ok {
			t.Errorf("ValidStatus(%q) = %v", s, !ok)
		}
	}
}

// A JSONL file written by the tap's sink, and a gzipped one, read back
// through a filter: the window 10:02–10:17, 5xx only.
func TestReadJSONL(t *testing.T) {
	dir := t.TempDir()
	s, err := jsonl.New(jsonl.Config{Path: filepath.Join(dir, "x.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	xs := exchanges()
	if err := s.Write(context.Background(), xs[:10]); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	// The rest gzipped, as a rotated file with compress.
	gzPath := filepath.Join(dir, "y.jsonl.gz")
	f, _ := os.Create(gzPath)
	gz := gzip.NewWriter(f)
	for i := range xs[10:] {
		_, _ = gz.Write(append(tap.AppendJSON(nil, &xs[10+i]), '\n'))
	}
	_ = gz.Close()
	_ = f.Close()
	var got []string
	err = replay.ReadJSONL(context.Background(), []string{filepath.Join(dir, "x.jsonl"), gzPath},
		replay.Filter{Since: t0.Add(2 * time.Minute), Until: t0.Add(17 * time.Minute), Statuses: []string{"5xx"}},
		func(x tap.Exchange) error { got = append(got, x.CorrelationID); return nil })
	if err != nil {
		t.Fatal(err)
	}
	// 10:02..10:16 with status 502 (i%4 == 1) or 504 (i%4 == 2): 2, 5, 6, 9, 10, 13, 14.
	want := []string{"id-c", "id-f", "id-g", "id-j", "id-k", "id-n", "id-o"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

// Send repeats each request with its method, path, query, headers and
// body, names the original in Replay-Of, drops the Idempotency-Key (it
// would attach, not run again), adds the configured headers, skips a
// request whose body the tap cut, and reports each outcome; a dry run
// sends nothing.
func TestSend(t *testing.T) {
	var mu sync.Mutex
	var got []*http.Request
	var bodies [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bodies = append(got, r), append(bodies, b)
		n := len(got)
		mu.Unlock()
		w.Header().Set("X-Correlation-Id", "new-"+r.Header.Get(replay.HeaderReplayOf))
		if n == 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	xs := exchanges()[:4]
	xs[3].Request.BodyTruncated = true
	dry, err := replay.Send(context.Background(), replay.Config{Target: srv.URL, DryRun: true}, xs)
	if err != nil || dry.Counts["skipped"] != 4 || len(got) != 0 {
		t.Fatalf("dry run: %+v, %v; %d sent", dry.Counts, err, len(got))
	}
	rep, err := replay.Send(context.Background(), replay.Config{Target: srv.URL, Rate: 100, Concurrency: 1,
		Header: http.Header{"Authorization": {"Bearer replayer"}}}, xs)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Counts["202"] != 2 || rep.Counts["503"] != 1 || rep.Counts["skipped"] != 1 || len(got) != 3 {
		t.Fatalf("counts %v, %d sent", rep.Counts, len(got))
	}
	r := got[0]
	if r.Method != "POST" || r.URL.Path != "/orders" || r.URL.RawQuery != "n=1" || r.Header.Get("X-Tenant") != "7" ||
		r.Header.Get("Content-Type") != "application/octet-stream" || r.Header.Get("Idempotency-Key") != "" ||
		r.Header.Get(replay.HeaderReplayOf) != "id-a" || r.Header.Get("Authorization") != "Bearer replayer" || bodies[0][0] != 0 {
		t.Errorf("replayed request %s %s?%s %v", r.Method, r.URL.Path, r.URL.RawQuery, r.Header)
	}
	if res := rep.Results[0]; res.Original != "id-a" || res.ID != "new-id-a" || res.Status != 202 {
		t.Errorf("result %+v", res)
	}
	if rep.Results[3].Skipped == "" {
		t.Errorf("a cut body was sent: %+v", rep.Results[3])
	}
}

// The same window read back from a postgres sink's table.
func TestReadPostgres(t *testing.T) {
	url := testenv.RequirePostgres(t)
	table := testenv.PostgresTable(t, url, "replay_test")
	ctx := t.Context()
	s, err := pgsink.New(pgsink.Config{URL: url, Table: table})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Write(ctx, exchanges()); err != nil {
		t.Fatal(err)
	}
	var got []string
	err = replay.ReadPostgres(ctx, url, table,
		replay.Filter{Since: t0.Add(2 * time.Minute), Until: t0.Add(17 * time.Minute), Statuses: []string{"5xx"}, Routes: []string{"orders"}},
		func(x tap.Exchange) error { got = append(got, x.CorrelationID); return nil })
	if err != nil {
		t.Fatal(err)
	}
	// Of TestReadJSONL's window, route orders (even i): 2, 6, 10, 14.
	if want := "id-c id-g id-k id-o"; strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
}

// A path with escapes that decoding would change (%3F, %23, %25, %2F) is
// replayed as the client sent it.
func TestSendKeepsTheEscapedPath(t *testing.T) {
	const path = "/orders/a%3Fb%23c%25d%2Fe%20f"
	seen := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.URL.EscapedPath() + "?" + r.URL.RawQuery
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	in := httptest.NewRequest("GET", path+"?q=%26", nil)
	x := tap.Exchange{CorrelationID: "id", Route: "orders", Request: tap.Capture(in, nil, nil, -1)}
	rep, err := replay.Send(context.Background(), replay.Config{Target: srv.URL}, []tap.Exchange{x})
	if err != nil || rep.Counts["200"] != 1 {
		t.Fatalf("Send: %+v, %v", rep, err)
	}
	if got := <-seen; got != path+"?q=%26" {
		t.Errorf("replayed as %s, want %s?q=%%26", got, path)
	}
}
