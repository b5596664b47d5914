package main

import (
	"strings"
	"testing"

	"github.com/syncgate/syncgate/internal/testenv"
)

// runMain runs the syncgate command as a child process to its exit and
// returns its stdout, stderr and exit status.
func runMain(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return testenv.RunMain(t, "SYNCGATE_TEST_AS_MAIN", args...)
}

// --help lists every flag with its type, variable and default on stdout and
// exits 0 (issue 15, point 1).
func TestHelpShowsDefaults(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		stdout, stderr, code := runMain(t, arg)
		if code != 0 || stderr != "" {
			t.Fatalf("%s: exit %d, stderr %q; want 0 and nothing", arg, code, stderr)
		}
		for _, want := range []string{
			"Usage: syncgate [flags]\n       syncgate version\n",
			"--version\n      print the version",
			"--help\n      this text",
			"--config file",
			"--addr string\n      HTTP listen address (env SYNCGATE_ADDR; default 127.0.0.1:8080)",
			"--drain-timeout duration\n",
			"(env SYNCGATE_DRAIN_TIMEOUT; default 10s)",
			"--max-body size\n",
			"(env SYNCGATE_MAX_BODY; default 1MiB)",
			"--max-in-flight int\n      requests served at once before 503; 0: no limit (env SYNCGATE_MAX_IN_FLIGHT; default 10000)",
			"--result-ttl duration\n",
			"default 10m)",
			"--cluster\n",
			"--kafka-brokers list\n",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("%s: usage lacks %q:\n%s", arg, want, stdout)
			}
		}
		if strings.Contains(stdout, " value\n") {
			t.Errorf("%s: a flag without its type:\n%s", arg, stdout)
		}
	}
}

// A bad flag is one line on stderr naming the flag, not the usage, and
// never the error twice.
func TestBadFlagIsOneLine(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--drain-timeout", "10"}, []string{"-drain-timeout", "not a duration (e.g. 10s, 1m30s)", "--help"}},
		{[]string{"--adr", "127.0.0.1:1"}, []string{"unknown flag --adr; did you mean --addr?"}},
		{[]string{"--verison"}, []string{"unknown flag --verison; did you mean --version?"}},
		{[]string{"--max-in-flight", "many"}, []string{"-max-in-flight", "not an integer"}},
		{[]string{"serve"}, []string{`unexpected argument "serve"`}},
	} {
		stdout, stderr, code := runMain(t, tt.args...)
		if code != 1 || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q; want 1 and nothing", tt.args, code, stdout)
		}
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "syncgate: ") {
			t.Errorf("%v: stderr is %d lines, want one \"syncgate: ...\" line:\n%s", tt.args, len(lines), stderr)
		}
		for _, w := range tt.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: stderr %q lacks %q", tt.args, stderr, w)
			}
		}
	}
}
