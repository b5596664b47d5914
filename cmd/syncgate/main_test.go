package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain lets the test binary act as the syncgate command, so the process
// tests below exercise the real main: flags, signals and exit code.
func TestMain(m *testing.M) {
	if os.Getenv("SYNCGATE_TEST_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	if code == 0 {
		// The in-process tests run the whole node: nothing may outlive them.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var readyLine = regexp.MustCompile(`msg=ready addr=(\S+)`)

// startProcess runs syncgate as a child process and returns its base URL.
func startProcess(t *testing.T, args ...string) (*exec.Cmd, string, <-chan error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "SYNCGATE_TEST_AS_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	out := make(chan string, 1)
	go func() { b, _ := io.ReadAll(stdout); out <- string(b) }()
	go func() {
		err := cmd.Wait()
		exited <- err
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	select {
	case a := <-addr:
		return cmd, "http://" + a, exited
	case err := <-exited:
		t.Fatalf("syncgate exited before ready: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("syncgate not ready within 20s")
	}
	return nil, "", nil
}

func TestProcessServesAndStopsOnSIGTERM(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd, base, exited := startProcess(t, "--addr", "127.0.0.1:0", "--drain-timeout", "10s")
			resp, err := http.Post(base+"/demo/echo", "text/plain", strings.NewReader("hi"))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "hi" {
				t.Fatalf("echo: %d %q", resp.StatusCode, body)
			}

			// A request in flight when the signal comes still gets its reply.
			inflight := make(chan string, 1)
			go func() {
				resp, err := http.Post(base+"/demo/sleep?ms=700", "text/plain", strings.NewReader("drained"))
				if err != nil {
					inflight <- "error: " + err.Error()
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				inflight <- resp.Status + " " + string(b)
			}()
			waitForInFlight(t, base)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if got := <-inflight; got != "200 OK drained" {
				t.Errorf("in-flight request: %q", got)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("exit: %v, want status 0", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("syncgate did not exit within 20s of the signal")
			}
		})
	}
}

// waitForInFlight waits (bounded) until the node reports one request
// waiting for its reply on /metrics.
func waitForInFlight(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "\nsyncgate_waiting_requests 1\n") {
			return
		}
		time.Sleep(5 * time.Millisecond) // scrape interval of a bounded condition wait
	}
	t.Fatal("the in-flight request never showed in syncgate_waiting_requests")
}

func TestBadFlagExitsNonZero(t *testing.T) {
	cmd := exec.Command(os.Args[0], "--max-body", "huge")
	cmd.Env = append(os.Environ(), "SYNCGATE_TEST_AS_MAIN=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("exit %v, want non-zero; output %s", err, out)
	}
	if !strings.Contains(string(out), "max-body") {
		t.Errorf("output does not name the flag: %s", out)
	}
}
