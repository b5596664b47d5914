package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestVersionCommand runs the real main: `syncgate version` and --version
// print one line naming the build on stdout and exit 0 without starting a
// node (no listener, no log).
func TestVersionCommand(t *testing.T) {
	for _, args := range [][]string{
		{"version"}, {"--version"}, {"-version"}, {"--addr", "127.0.0.1:0", "--version"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], args...)
			// Without the race detector's one-second sleep at exit.
			cmd.Env = append(os.Environ(), "SYNCGATE_TEST_AS_MAIN=1", "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("exit: %v, want status 0\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
			}
			out := stdout.String()
			want := "syncgate " + readBuildVersion().Version + " revision "
			if !strings.HasPrefix(out, want) || !strings.HasSuffix(out, " "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH+"\n") ||
				strings.Count(out, "\n") != 1 {
				t.Errorf("stdout %q, want one line %q…", out, want)
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr %q, want nothing", stderr.String())
			}
		})
	}
}

func TestVersionOf(t *testing.T) {
	setting := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	const rev = "a2f1a08c0ffee0000000000000000000000000ab"
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		want buildVersion
	}{
		{"no build info", nil, buildVersion{"(devel)", "unknown", runtime.Version()}},
		{"go run", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}},
			buildVersion{"(devel)", "unknown", "go1.26.0"}},
		{"clean checkout", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.0.0-20261204171426-a2f1a08c0ffe"},
			Settings: setting("vcs", "git", "vcs.revision", rev, "vcs.modified", "false")},
			buildVersion{"v0.0.0-20261204171426-a2f1a08c0ffe", rev, "go1.26.0"}},
		{"local changes", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3+dirty"},
			Settings: setting("vcs.revision", rev, "vcs.modified", "true")},
			buildVersion{"v1.2.3+dirty", rev + "+dirty", "go1.26.0"}},
		{"installed module", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"}},
			buildVersion{"v1.2.3", "unknown", "go1.26.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := versionOf(tc.bi); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestBuildInfoInBannerAndMetrics runs a node in process: the "starting"
// line names the version and revision, and /metrics has
// syncgate_build_info with the same labels.
func TestBuildInfoInBannerAndMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--readiness-delay", "1ms", "--drain-timeout", "1s"},
			func(string) string { return "" }, &stdout, &stderr)
	}()
	var base string
	deadline := time.Now().Add(20 * time.Second)
	for base == "" {
		if m := readyLine.FindStringSubmatch(stderr.String()); m != nil {
			base = "http://" + m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("run returned before ready: %v\n%s", err, stderr.String())
		case <-time.After(5 * time.Millisecond): // polling the log for a bounded condition
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 20s:\n%s", stderr.String())
		}
	}
	v := readBuildVersion()
	banner := regexp.MustCompile(`msg=starting version=(\S+) revision=(\S+) `).FindStringSubmatch(stderr.String())
	if banner == nil || strings.Trim(banner[1], `"`) != v.Version || banner[2] != v.Revision {
		t.Errorf("starting line without version=%s revision=%s:\n%s", v.Version, v.Revision, stderr.String())
	}

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `syncgate_build_info{goversion="` + v.GoVersion + `",revision="` + v.Revision + `",version="` + v.Version + `"} 1`
	if !strings.Contains(string(body), "\n"+want+"\n") {
		t.Errorf("/metrics has no line %s:\n%s", want, grepLines(string(body), "build_info"))
	}

	cancel()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return within 20s of cancel")
	}
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// lockedBuffer is a bytes.Buffer the node's logger and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
