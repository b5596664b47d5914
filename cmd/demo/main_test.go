package main

import (
	"os"
	"strings"
	"testing"

	"github.com/syncgate/syncgate/internal/testenv"
)

// TestMain lets the test binary act as the demo command, so that exit codes
// are those of the real main.
func TestMain(m *testing.M) {
	if os.Getenv("DEMO_TEST_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runMain(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return testenv.RunMain(t, "DEMO_TEST_AS_MAIN", args...)
}

// --help prints the flags on stdout and exits 0, not "flag: help requested"
// and 1 (issue 15, point 1).
func TestHelpExitsZero(t *testing.T) {
	stdout, stderr, code := runMain(t, "--help")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	for _, want := range []string{"Usage: demo [flags]", "-broker string", `(default "kafka")`, "-concurrency int"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("usage lacks %q:\n%s", want, stdout)
		}
	}
}

// A bad flag is one error line, without the usage.
func TestBadFlagIsOneLine(t *testing.T) {
	stdout, stderr, code := runMain(t, "--concurrency", "lots")
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != 1 || stdout != "" || len(lines) != 1 || !strings.Contains(stderr, "-concurrency") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and one line naming the flag", code, stdout, stderr)
	}
}
