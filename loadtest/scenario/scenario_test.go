package scenario_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/syncgate/syncgate/internal/testenv"
	"github.com/syncgate/syncgate/loadtest"
	"github.com/syncgate/syncgate/loadtest/floor"
	"github.com/syncgate/syncgate/loadtest/scenario"
)

// TestMain lets the test binary serve the many-waiters node when a test
// starts it as a child process.
func TestMain(m *testing.M) {
	if os.Getenv(echoServerEnv) != "" {
		// The floor of memory-procs, as `loadtest echo-server` serves it.
		listening := func(addr string) { fmt.Printf("{\"addr\":%q}\n", addr) }
		if err := floor.EchoServer(context.Background(), floor.EchoServerConfig{Addr: "127.0.0.1:0", Listening: listening}); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	if n := os.Getenv(scenario.WaitersEnv); n != "" {
		waiters, err := strconv.Atoi(n)
		if err == nil {
			err = scenario.ServeNode(context.Background(), os.Stdin, os.Stdout, waiters)
		}
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A smoke run of the memory scenario at a twentieth of its short length (a
// few seconds): every request answered 200, the comparisons filled in.
func TestMemorySmoke(t *testing.T) {
	rep, err := scenario.Run(t.Context(), "memory", scenario.Options{Short: true, Scale: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 6 || len(rep.Comparisons) != 4 {
		t.Fatalf("%d results, %d comparisons; want 6 and 4", len(rep.Results), len(rep.Comparisons))
	}
	for _, r := range rep.Results {
		if r.Requests == 0 || r.Errors != 0 || r.Status["200"] != r.Requests {
			t.Errorf("%s: %d requests, %d errors, statuses %v", r.Name, r.Requests, r.Errors, r.Status)
		}
	}
	if c := rep.Comparisons[0]; c.Met == nil || c.Ratio <= 0 || !strings.Contains(c.Floor, "direct") {
		t.Errorf("throughput comparison %+v: want a ratio to direct with an aim", c)
	}
	// The 1-worker runs are interleaved too: merged over the rounds, their
	// p50 ratio the median of the rounds'.
	if r := rep.Result("gateway/memory, 1 worker"); r == nil || r.Requests == 0 {
		t.Errorf("no merged 1-worker result: %+v", r)
	}
	if c := rep.Comparisons[1]; c.Ratio <= 0 || !strings.Contains(c.What, "1 worker: p50 (ratio: median of 5 interleaved rounds)") {
		t.Errorf("1-worker p50 comparison %+v: want the median of the rounds' ratios", c)
	}
	if notes := strings.Join(rep.Notes, "\n"); !strings.Contains(notes, "gateway/memory / direct, round by round: throughput (64 workers) ") ||
		!strings.Contains(notes, "; p50 (1 worker) ") {
		t.Errorf("notes %q: want the round-by-round ratios", rep.Notes)
	}
	dir := t.TempDir()
	plots, err := scenario.WritePlots(rep, dir, "svg")
	if err != nil || len(plots) != 2 {
		t.Fatalf("plots %v: %v", plots, err)
	}
	md := scenario.Markdown(rep, plots)
	for _, want := range []string{"### memory", "| gateway/memory, 64 workers |", "≥ 0.60", ".svg)"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
}

// many-waiters with 200 waiters and short phases, the node in a child
// process (this test binary, see TestMain).
func TestManyWaitersSmoke(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	rep, err := scenario.ManyWaiters(t.Context(), scenario.Options{
		Short: true, Scale: 0.1, Waiters: 200, NodeCommand: []string{exe},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := rep.Memory
	if m == nil || m.With.Waiting != 200 || m.With.Goroutines <= m.Before.Goroutines || m.With.RSS == 0 {
		t.Fatalf("memory %+v", m)
	}
	for _, r := range rep.Results {
		if r.Requests == 0 || r.Status["200"] != r.Requests {
			t.Errorf("%s: %d requests, statuses %v", r.Name, r.Requests, r.Status)
		}
	}
	if !strings.Contains(strings.Join(rep.Notes, "\n"), "200×200") {
		t.Errorf("notes %q: want every slow request answered 200", rep.Notes)
	}
}

func TestUpdateSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCH.md")
	if err := scenario.UpdateSection(path, "Benchmarks", "one\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	// Someone else's section, before and after ours.
	other := "# Benchmarks\n\n## Middleware overhead\n\nkeep me\n\n" + strings.TrimPrefix(string(b), "# Benchmarks\n\n") + "\n## Later\n\nme too\n"
	if err := os.WriteFile(path, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := scenario.UpdateSection(path, "Benchmarks", "two\n"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	got := string(b)
	want := "# Benchmarks\n\n## Middleware overhead\n\nkeep me\n\n" + scenario.BeginMarker + "\ntwo\n" + scenario.EndMarker + "\n\n## Later\n\nme too\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// Markers gone: the section is appended, nothing else changes.
	if err := os.WriteFile(path, []byte("# B\n\ntext\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := scenario.UpdateSection(path, "B", "three"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	if string(b) != "# B\n\ntext\n\n"+scenario.BeginMarker+"\nthree\n"+scenario.EndMarker+"\n" {
		t.Errorf("append: %q", b)
	}
}

// echoServerEnv makes this test binary the echo-server floor (TestMain).
const echoServerEnv = "SCENARIO_TEST_ECHO_SERVER"

// memory-procs at a tenth of its short length: the gateway built and run
// as its own process, the floor this test binary; every echo checked, and
// every process's CPU per request reported and compared.
func TestMemoryProcsSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/syncgate and runs it as a process")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(echoServerEnv, "1") // inherited by the floor's process only: this one has started
	rep, err := scenario.Run(t.Context(), "memory-procs", scenario.Options{Short: true, Scale: 0.1, FloorCommand: []string{exe}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 4 {
		t.Fatalf("%d results, want 4", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.Requests == 0 || r.Errors != 0 || r.Status["200"] != r.Requests {
			t.Errorf("%s: %d requests, %d errors, statuses %v", r.Name, r.Requests, r.Errors, r.Status)
		}
		if len(r.CPU) != 2 || r.CPU[0].Name != loadtest.LoadGenerator {
			t.Fatalf("%s: CPU %+v, want the load generator and one process", r.Name, r.CPU)
		}
		for _, c := range r.CPU {
			if c.Err != "" || c.PerRequestUS <= 0 {
				t.Errorf("%s: %s: %.1f µs per request (%s)", r.Name, c.Name, c.PerRequestUS, c.Err)
			}
		}
	}
	if c := rep.Comparisons[0]; c.Met == nil || c.Ratio <= 0 || c.Unit != "µs" {
		t.Errorf("CPU comparison %+v", c)
	}
}

// A smoke run of cluster-procs with two nodes: every request answered 200
// across both, every process's CPU reported (nodes, broker, service, six
// Redis nodes), and Redis's work per request what TestRedisWorkPerRequest
// counts for an auto request (1 round trip, 5 commands): the figure
// docs/scaling.md builds on, checked end to end.
func TestClusterProcsSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three commands and starts a Redis Cluster")
	}
	rep, err := scenario.Run(t.Context(), "cluster-procs", scenario.Options{Short: true, Scale: 0.2, Nodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Skipped != "" {
		testenv.Unavailable(t, "cluster-procs skipped: %s", rep.Skipped)
	}
	r := rep.Results[0]
	if r.Requests == 0 || r.Errors != 0 || r.Status["200"] != r.Requests {
		t.Errorf("%d requests, %d errors, statuses %v", r.Requests, r.Errors, r.Status)
	}
	if len(r.CPU) != 1+2+2+6 {
		t.Errorf("CPU of %d processes, want 11 (load generator, broker, service, 2 nodes, 6 Redis): %+v", len(r.CPU), r.CPU)
	}
	for _, c := range r.CPU {
		if c.Err != "" || c.PerRequestUS <= 0 {
			t.Errorf("%s: %.1f µs per request (%s)", c.Name, c.PerRequestUS, c.Err)
		}
	}
	for _, c := range rep.Comparisons {
		if c.Met == nil || !*c.Met || c.Ratio < 0.9 {
			t.Errorf("%s: %.2f per request, want %.0f", c.What, c.Value, c.FloorValue)
		}
	}
}

// many-streams with 200 streams and short phases: every stream opens and
// is counted, and closes when its client leaves.
func TestManyStreamsSmoke(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	rep, err := scenario.ManyStreams(t.Context(), scenario.Options{
		Short: true, Scale: 0.1, Waiters: 200, NodeCommand: []string{exe},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := rep.Streams
	if m == nil || m.With.Streams != 200 || m.Before.Streams != 0 || m.With.Goroutines <= m.Before.Goroutines || m.With.RSS == 0 {
		t.Fatalf("streams %+v", m)
	}
	for _, r := range rep.Results {
		if r.Requests == 0 || r.Status["200"] != r.Requests {
			t.Errorf("%s: %d requests, statuses %v", r.Name, r.Requests, r.Status)
		}
	}
}
