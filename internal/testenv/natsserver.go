package testenv

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// NATSServer is a private nats-server, a child of the test binary on a
// loopback port of its own, for the tests that stop and start a server:
// the shared one on 4222 is other tests' too. It dies with the test binary
// (on Linux) and is killed when the test ends.
type NATSServer struct {
	// URL is nats://127.0.0.1:<port>; it stays the same across restarts.
	URL  string
	t    testing.TB
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	logs *SyncBuffer   // the current process's output, for failures
}

// natsServerStart bounds a start, to the server's "Server is ready".
const natsServerStart = 15 * time.Second

// StartNATSServer runs `nats-server -a 127.0.0.1 -p <free port>`, with
// JetStream storing in a directory of the test when jetstream is set, plus
// extra arguments, and returns once the server is ready. Without the
// nats-server binary the test fails under CI=true and is skipped
// elsewhere.
func StartNATSServer(t testing.TB, jetstream bool, extra ...string) *NATSServer {
	t.Helper()
	skipShort(t, "nats-server")
	if _, err := exec.LookPath("nats-server"); err != nil {
		Unavailable(t, "this test needs the nats-server binary on PATH: %v", err)
	}
	port := FreePort(t)
	args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)}
	if jetstream {
		args = append(args, "-js", "-sd", t.TempDir())
	}
	s := &NATSServer{URL: "nats://127.0.0.1:" + strconv.Itoa(port), t: t, args: append(args, extra...)}
	t.Cleanup(s.Kill)
	s.Start()
	return s
}

// Start runs the server again with the same command (port, data directory)
// after Stop or Kill, and returns once it is ready.
func (s *NATSServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		select {
		case <-s.done:
		default:
			s.t.Fatal("testenv: nats-server is running already")
		}
	}
	cmd := exec.Command("nats-server", s.args...)
	DieWithParent(cmd)
	out, err := cmd.StderrPipe() // nats-server logs to stderr
	if err != nil {
		s.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("testenv: start nats-server %s: %v", strings.Join(s.args, " "), err)
	}
	logs, done, ready := &SyncBuffer{}, make(chan struct{}), make(chan struct{})
	go func() {
		var once sync.Once
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			fmt.Fprintln(logs, sc.Text())
			if strings.Contains(sc.Text(), "Server is ready") {
				once.Do(func() { close(ready) })
			}
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done, s.logs = cmd, done, logs
	select {
	case <-ready:
	case <-done:
		s.t.Fatalf("testenv: nats-server %s exited at start:\n%s", strings.Join(s.args, " "), logs)
	case <-time.After(natsServerStart):
		s.t.Fatalf("testenv: nats-server %s not ready within %v:\n%s", strings.Join(s.args, " "), natsServerStart, logs)
	}
}

// Stop ends the server the way an operator does (SIGTERM: it closes its
// clients' connections and flushes JetStream) and returns once it exited;
// it kills it if it has not within 10 s.
func (s *NATSServer) Stop() { s.end(syscall.SIGTERM, 10*time.Second) }

// Kill ends the server at once (SIGKILL, a crash) and returns once it
// exited. It is a no-op when the server is not running.
func (s *NATSServer) Kill() { s.end(syscall.SIGKILL, 0) }

func (s *NATSServer) end(sig syscall.Signal, grace time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-s.done:
			return
		case <-time.After(grace):
			s.t.Logf("testenv: nats-server did not exit within %v of %v; killing it", grace, sig)
			_ = s.cmd.Process.Kill()
		}
	}
	<-s.done
}

// Logs returns what the running (or last) server process logged.
func (s *NATSServer) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logs == nil {
		return ""
	}
	return s.logs.String()
}
