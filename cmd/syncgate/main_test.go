package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/syncgate/syncgate/internal/testenv"
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
	// The race detector sleeps a second at exit by default: not the node's
	// time, and it used up the second of slack that
	// TestSIGTERMAsALoadBalancerSeesIt allows for the exit (a CI failure).
	cmd.Env = append(os.Environ(), "SYNCGATE_TEST_AS_MAIN=1", "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
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
			cmd, base, exited := startProcess(t, "--addr", "127.0.0.1:0", "--drain-timeout", "10s", "--readiness-delay", "10ms")
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
	waitForMetric(t, base, "syncgate_waiting_requests 1")
}

// waitForMetric waits (bounded) until /metrics has the line want.
func waitForMetric(t *testing.T, base, want string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, fmt.Sprintf("/metrics shows %q", want), func() bool {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(b), "\n"+want+"\n")
	})
}

// TestSIGTERMAsALoadBalancerSeesIt: after SIGTERM the node goes on serving
// for the readiness delay with /readyz answering 503 (so a probe sees "not
// ready" before connections are refused); an upload still in progress at
// the end of the drain is answered with a 503 problem; the process exits 0
// within readiness delay + drain timeout.
func TestSIGTERMAsALoadBalancerSeesIt(t *testing.T) {
	const delay, drain = 1500 * time.Millisecond, 2 * time.Second
	cmd, base, exited := startProcess(t, "--addr", "127.0.0.1:0",
		"--readiness-delay", delay.String(), "--drain-timeout", drain.String())
	addr := strings.TrimPrefix(base, "http://")

	// A client that sends its headers and a tenth of its body, then stalls.
	upload, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer upload.Close()
	if _, err := fmt.Fprintf(upload, "POST /demo/echo HTTP/1.1\r\nHost: %s\r\nContent-Length: 1000\r\n\r\n%s", addr, strings.Repeat("x", 100)); err != nil {
		t.Fatal(err)
	}
	waitForMetric(t, base, "syncgate_http_in_flight_requests 2") // the upload and the scrape

	signalled := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// During the delay: not ready, yet still serving.
	client := &http.Client{Timeout: 5 * time.Second}
	var sawNotReady, servedWhileNotReady bool
	for time.Since(signalled) < delay/2 && !(sawNotReady && servedWhileNotReady) {
		resp, err := client.Get(base + "/readyz")
		if err != nil {
			t.Fatalf("/readyz %v after SIGTERM: %v; want 503 during the readiness delay", time.Since(signalled), err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			sawNotReady = true
			resp, err := client.Post(base+"/demo/echo", "text/plain", strings.NewReader("still here"))
			if err != nil {
				t.Fatalf("request during the readiness delay: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "still here" {
				t.Fatalf("request during the readiness delay: %d %q", resp.StatusCode, b)
			}
			servedWhileNotReady = true
		}
	}
	if !sawNotReady || !servedWhileNotReady {
		t.Fatalf("no /readyz 503 with requests still served within %v of SIGTERM", delay/2)
	}

	// The stalled upload is answered, with a problem, before the exit.
	_ = upload.SetReadDeadline(time.Now().Add(delay + drain + 5*time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(upload), nil)
	if err != nil {
		t.Fatalf("the stalled upload got no response: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "urn:syncgate:problem:shutting-down") {
		t.Errorf("stalled upload: %d %s; want a 503 shutting-down problem", resp.StatusCode, b)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v, want status 0", err)
		}
		// A second of slack for process start-up and a loaded machine.
		if took := time.Since(signalled); took > delay+drain+time.Second {
			t.Errorf("exited %v after SIGTERM, want within readiness delay + drain timeout (%v)", took, delay+drain)
		}
	case <-time.After(delay + drain + 10*time.Second):
		t.Fatal("syncgate did not exit")
	}
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
