package clustertest

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// errNodeTaken is the message of correlation/redisstate.ErrNodeTaken.
const errNodeTaken = "node id is held by another live process"

// TestSecondProcessWithLiveNodeID: a second process started as node a
// while a lives exits non-zero, naming the reason, and a keeps its id and
// its readiness. Once a is killed, a new process takes the id within about
// the lease TTL (2s).
func TestSecondProcessWithLiveNodeID(t *testing.T) {
	c := newCluster(t, "a")
	a := c.Node("a")

	// Its own address, so that it can only fail on the id.
	began := time.Now()
	second := c.start("a", []string{"--addr", "127.0.0.1:0"})
	select {
	case <-second.proc.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("a second process with node id a still runs after 30s")
	}
	err := second.proc.Err()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() <= 0 {
		t.Errorf("the second process exited with %v, want a non-zero exit code", err)
	}
	if log := second.proc.Log(); !strings.Contains(log, errNodeTaken) {
		t.Errorf("the second process's stderr does not say %q:\n%s", errNodeTaken, log)
	}
	t.Logf("the second process was refused after %v", time.Since(began).Round(time.Millisecond))
	if status, body, err := c.get(a, "/readyz"); err != nil || status != http.StatusOK || body != "ok\n" {
		t.Errorf("node a after the second process: /readyz %d %q %v, want 200 ok", status, body, err)
	}

	a.proc.Kill()
	began = time.Now()
	c.Restart("a")
	took := time.Since(began)
	t.Logf("a new process took node id a %v after the old one was killed", took.Round(time.Millisecond))
	if took > 15*time.Second {
		t.Errorf("a new node a took %v to start after the old one was killed; its lease TTL is 2s", took)
	}
}
