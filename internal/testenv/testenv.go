// Package testenv holds what the tests of several packages need alike:
// the shared servers (RequireRedis, RequireRabbitMQ: a test that cannot
// reach one fails under CI=true and is skipped elsewhere), waiting for a
// condition (Eventually), and running a command's real main as a child
// process (RunMain).
package testenv

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"
)

// RunMain runs the test binary itself as a child process with envVar=1 in
// its environment (the package's TestMain then calls main, so the exit
// status is the real command's) and returns its stdout, stderr and exit
// status. The child gets 20 s; the race detector's sleep at exit is off.
func RunMain(t testing.TB, envVar string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), envVar+"=1", "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%q: %v", args, err)
	}
	return out.String(), errb.String(), code
}
