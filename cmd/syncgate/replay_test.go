package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/testenv"
	"github.com/syncgate/syncgate/replay"
	"github.com/syncgate/syncgate/tap"
)

// readTap reads the exchanges of a JSONL tap file (none while it does
// not exist).
func readTap(t *testing.T, path string) []tap.Exchange {
	t.Helper()
	var out []tap.Exchange
	err := replay.ReadJSONL(context.Background(), []string{path}, replay.Filter{}, func(x tap.Exchange) error {
		out = append(out, x)
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

// The replay use case, through the binary: a node taps a route to a JSONL
// file; requests of the route that timed out (504) are selected by
// status and time window and sent again; the node sees each once more,
// with Replay-Of naming the original, and the report counts them.
func TestReplayThroughTheBinary(t *testing.T) {
	dir := t.TempDir()
	exchanges := filepath.Join(dir, "exchanges.jsonl")
	cfg := filepath.Join(dir, "tap.yaml")
	if err := os.WriteFile(cfg, []byte(`demo: {enabled: true}
taps: {sinks: [{name: audit, kind: jsonl, path: `+exchanges+`}]}
routes:
  - {name: pay, method: POST, path: /pay, destination: demo.sleep, mode: sync, timeout: 300ms, tap: {sinks: [audit]}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, base, _ := startProcess(t, "--config", cfg, "--addr", "127.0.0.1:0", "--readiness-delay", "1ms")
	start := time.Now().UTC()
	post := func(query string) int {
		resp, err := http.Post(base+"/pay?"+query, "text/plain", strings.NewReader("pay me"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Two fail (the service takes longer than the route's timeout), one works.
	for _, q := range []string{"ms=1000", "ms=0", "ms=1000"} {
		post(q)
	}
	testenv.Eventually(t, 10*time.Second, "the tap wrote 3 exchanges", func() bool { return len(readTap(t, exchanges)) == 3 })
	var failed []string
	for _, x := range readTap(t, exchanges) {
		if x.Status == http.StatusGatewayTimeout {
			failed = append(failed, x.CorrelationID)
		}
	}
	if len(failed) != 2 {
		t.Fatalf("failed originals %v, want 2", failed)
	}

	var stdout, stderr bytes.Buffer
	report := filepath.Join(dir, "report.json")
	err := run(context.Background(), []string{"replay", "--from", filepath.Join(dir, "exchanges*.jsonl"), "--route", "pay",
		"--since", start.Add(-time.Minute).Format(time.RFC3339), "--status", "5xx", "--to", base, "--rate", "50", "--report", report},
		func(string) string { return "" }, &stdout, &stderr)
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, stderr.String())
	}
	// The replays of requests that wait 1 s on a 300 ms route time out again.
	if !strings.Contains(stdout.String(), "| 504 | 2 |") || !strings.Contains(stdout.String(), "| total | 2 |") {
		t.Errorf("replay table:\n%s", stdout.String())
	}
	testenv.Eventually(t, 10*time.Second, "the replays were tapped too", func() bool { return len(readTap(t, exchanges)) == 5 })
	replayed := map[string]bool{}
	for _, x := range readTap(t, exchanges)[3:] {
		replayed[x.Request.Header["Replay-Of"][0]] = true
	}
	for _, id := range failed {
		if !replayed[id] {
			t.Errorf("original %s was not replayed (replays of %v)", id, replayed)
		}
	}
	b, err := os.ReadFile(report)
	if err != nil || !bytes.Contains(b, []byte(`"original_correlation_id": "`+failed[0]+`"`)) {
		t.Errorf("report %s: %v", b, err)
	}
}

// The same from a postgres sink: a node taps a route to a table; a dry
// run of the window sends nothing and lists the two 504s; the replay
// sends them again into the running node, which sees each with Replay-Of.
func TestReplayFromPostgresThroughTheBinary(t *testing.T) {
	url := testenv.RequirePostgres(t)
	table := testenv.PostgresTable(t, url, "replay_e2e")
	dir := t.TempDir()
	exchanges := filepath.Join(dir, "exchanges.jsonl")
	cfg := filepath.Join(dir, "tap.yaml")
	if err := os.WriteFile(cfg, []byte(`demo: {enabled: true}
taps:
  sinks:
    - {name: db, kind: postgres, url: "`+url+`", table: `+table+`}
    - {name: audit, kind: jsonl, path: `+exchanges+`}
routes:
  - {name: pay, method: POST, path: /pay, destination: demo.sleep, mode: sync, timeout: 300ms, tap: {sinks: [db, audit]}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, base, _ := startProcess(t, "--config", cfg, "--addr", "127.0.0.1:0", "--readiness-delay", "1ms")
	start := time.Now().UTC()
	for _, q := range []string{"ms=1000", "ms=0", "ms=1000"} {
		resp, err := http.Post(base+"/pay?"+q, "text/plain", strings.NewReader("pay me"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	testenv.Eventually(t, 10*time.Second, "the tap wrote 3 exchanges", func() bool { return len(readTap(t, exchanges)) == 3 })
	end := time.Now().UTC().Add(time.Second)
	replay := func(extra ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		// The postgres sink writes its batch within 10 ms of the file's:
		// a window read too early finds fewer rows, so read until both.
		args := append([]string{"replay", "--from-postgres", url, "--table", table, "--route", "pay",
			"--since", start.Add(-time.Minute).Format(time.RFC3339), "--until", end.Format(time.RFC3339), "--status", "504"}, extra...)
		if err := run(context.Background(), args, func(string) string { return "" }, &stdout, &stderr); err != nil {
			t.Fatalf("replay %v: %v\n%s", extra, err, stderr.String())
		}
		return stdout.String()
	}
	var dry string
	testenv.Eventually(t, 10*time.Second, "the dry run lists the two 504s", func() bool {
		dry = replay("--dry-run")
		return strings.Contains(dry, "| skipped | 2 |")
	})
	if n := len(readTap(t, exchanges)); n != 3 {
		t.Fatalf("a dry run sent requests: %d exchanges", n)
	}
	out := replay("--to", base, "--rate", "50")
	if !strings.Contains(out, "| 504 | 2 |") || !strings.Contains(out, "| total | 2 |") {
		t.Errorf("replay table:\n%s", out)
	}
	testenv.Eventually(t, 10*time.Second, "the replays reached the node", func() bool { return len(readTap(t, exchanges)) == 5 })
	for _, x := range readTap(t, exchanges)[3:] {
		if len(x.Request.Header["Replay-Of"]) != 1 {
			t.Errorf("a replay without Replay-Of: %+v", x.Request.Header)
		}
	}
}
