package clustertest

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// process is a child process whose stderr goes to a file, printed (its
// tail) when the test fails; stdout goes to the same name plus ".stdout".
// It is killed when the test ends.
type process struct {
	t       *testing.T
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed once the process exited
	err     error         // its exit status, set before done is closed
}

// startProcess starts bin with args.
func startProcess(t *testing.T, name, logPath, bin string, args ...string) *process {
	t.Helper()
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	outFile, err := os.OpenFile(logPath+".stdout", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = outFile, logFile
	err = cmd.Start()
	// The child holds its own descriptors.
	_ = logFile.Close()
	_ = outFile.Close()
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{t: t, name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		// A node built with -race reports a data race on stderr and goes on.
		log := p.Log()
		for _, bad := range []string{"WARNING: DATA RACE", "panic: "} {
			if i := strings.Index(log, bad); i >= 0 {
				t.Errorf("%s (pid %d) reported %q:\n%s", name, cmd.Process.Pid, bad, log[i:min(len(log), i+6000)])
			}
		}
		if t.Failed() {
			t.Logf("--- %s (pid %d), last lines of %s:\n%s", name, cmd.Process.Pid, logPath, p.Tail(60))
		}
	})
	return p
}

// childEnv is this process's environment without SYNCGATE_* variables, so
// that nothing set around the test run changes the nodes' configuration.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SYNCGATE_") {
			env = append(env, kv)
		}
	}
	return env
}

// Kill sends SIGKILL and waits until the process is gone. It is
// idempotent.
func (p *process) Kill() {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("%s (pid %d) still running 10s after SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

// Stop sends SIGTERM and waits up to timeout for the process to exit,
// returning its exit status.
func (p *process) Stop(timeout time.Duration) error {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.t.Fatalf("%s (pid %d) still running %v after SIGTERM", p.name, p.cmd.Process.Pid, timeout)
		return nil
	}
}

// Exited reports whether the process has exited.
func (p *process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Done is closed once the process exited.
func (p *process) Done() <-chan struct{} { return p.done }

// Err is the exit status; valid once Exited.
func (p *process) Err() error {
	<-p.done
	return p.err
}

// Log returns everything the process wrote to stderr.
func (p *process) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return string(b)
}

// Tail returns the last n lines the process wrote to stderr.
func (p *process) Tail(n int) string {
	b := bytes.TrimRight([]byte(p.Log()), "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
