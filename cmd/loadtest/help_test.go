package main

import (
	"bytes"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/syncgate/syncgate/internal/testenv"
)

// TestMain lets the test binary act as the loadtest command, so the tests
// below see the real exit status.
func TestMain(m *testing.M) {
	if os.Getenv("LOADTEST_TEST_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runMain runs the command in a child process: stdout, stderr, exit status.
func runMain(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return testenv.RunMain(t, "LOADTEST_TEST_AS_MAIN", args...)
}

// Help asked for in any of the usual ways prints the usage on stdout and
// exits 0; no command is a usage error (2), an unknown one an error (1).
func TestHelpExitStatus(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		status int
		stdout string // a line the output must contain
	}{
		{[]string{"--help"}, 0, "loadtest run [flags]"},
		{[]string{"-h"}, 0, "loadtest run [flags]"},
		{[]string{"help"}, 0, "loadtest run [flags]"},
		{[]string{"run", "-h"}, 0, "usage: loadtest run -url URL [flags]"},
		{[]string{"run", "--help"}, 0, "-plot-format"},
		{[]string{"scenario", "-h"}, 0, "NAME one of direct,"},
		{[]string{"bench", "--help"}, 0, "usage: loadtest bench [flags]"},
		{[]string{"help"}, 0, "loadtest naive-gateway -broker kafka|rabbitmq"},
		{[]string{"naive-gateway", "-h"}, 0, `prints {"addr":"127.0.0.1:PORT"}`},
		{[]string{"naive-echo", "--help"}, 0, `prints {"ready":true}`},
		{[]string{"echo-server", "-h"}, 0, "usage: loadtest echo-server [flags]"},
		{[]string{"naive-echo", "-broker", "nats"}, 1, ""},
		{nil, 2, ""},
		{[]string{"nope"}, 1, ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			stdout, stderr, status := runMain(t, tc.args...)
			if status != tc.status {
				t.Errorf("exit status %d, want %d\nstdout: %s\nstderr: %s", status, tc.status, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, stdout)
			}
			if tc.status == 0 && stderr != "" {
				t.Errorf("stderr %q, want nothing", stderr)
			}
		})
	}
}

var lastProgress = regexp.MustCompile(`\[t\] end .* done (\d+) `)

// -plot-format and -plot-name choose the plot files; the last progress
// line counts the measured requests only, as the table does (the warm-up
// is not in it).
func TestRunPlotFlagsAndProgress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"run", "-url", srv.URL, "-rate", "100", "-duration", "500ms", "-warmup", "300ms",
		"-name", "t", "-plot-dir", dir, "-plot-format", "png", "-plot-name", "r1"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "| t | open | 100 req/s | 50 |") {
		t.Errorf("table:\n%s", stdout.String())
	}
	if m := lastProgress.FindStringSubmatch(stderr.String()); m == nil || m[1] != "50" {
		t.Errorf("last progress line %q, want done 50 as in the table:\n%s", m, stderr.String())
	}
	for _, f := range []string{"r1-latency.png", "r1-percentiles.png"} {
		file, err := os.Open(filepath.Join(dir, f))
		if err != nil {
			t.Error(err)
			continue
		}
		img, err := png.DecodeConfig(file)
		file.Close()
		// 8 × 4 inches of plot at 96 dpi, and the legend under it.
		if err != nil || img.Width != 768 || img.Height <= 384 {
			t.Errorf("%s: %+v %v; want a 768-pixel-wide PNG taller than 384 (legend under the axes)", f, img, err)
		}
	}
}

// A bad -plot-format or -plot-name is refused before any load is sent.
func TestRunRejectsBadPlotFlagsFirst(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	for _, args := range [][]string{{"-plot-format", "gif"}, {"-plot-name", "a/b"}} {
		var out bytes.Buffer
		err := run(t.Context(), append([]string{"run", "-url", srv.URL, "-rate", "100", "-duration", "200ms",
			"-warmup", "0s", "-plot-dir", t.TempDir()}, args...), &out, &out)
		if err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%q: error %v, want one naming %s", args, err, args[0])
		}
	}
	for _, args := range [][]string{{"scenario", "direct", "-plot-format", "gif"}, {"bench", "-plot-format", "gif"}} {
		var out bytes.Buffer
		if err := run(t.Context(), args, &out, &out); err == nil || !strings.Contains(err.Error(), "-plot-format") {
			t.Errorf("%q: error %v, want one naming -plot-format", args, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d requests sent; want none", n)
	}
}
