package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/syncgate/syncgate/brokers/responder/demo"
)

// TestSameNodeIDRefusedOnKafka: two syncgate processes on one Kafka (kfake
// in this process) with the same --node. The second exits non-zero within
// 15s, saying which node id clashes, while the first keeps answering; once
// the first is killed (no clean leave), a new process with that id starts
// within its session timeout and answers.
func TestSameNodeIDRefusedOnKafka(t *testing.T) {
	fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, demo.EchoDestination, demo.SleepDestination))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(fake.Close)
	const node = "gw-same-id"
	args := []string{"--addr", "127.0.0.1:0", "--broker", "kafka", "--kafka-brokers", fake.ListenAddrs()[0], "--node", node}

	first, base, _ := startProcess(t, append(args, "--demo")...)
	echo(t, base, "from the first")

	// The second runs without the demo service, so that only its reply
	// inbox meets the first.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, os.Args[0], append(args, "--demo=false")...)
	second.Env = append(os.Environ(), "SYNCGATE_TEST_AS_MAIN=1")
	start := time.Now()
	out, err := second.CombinedOutput()
	took := time.Since(start)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("second process with node id %s: exit %v after %v, want non-zero; output:\n%s", node, err, took, out)
	}
	if took > 15*time.Second {
		t.Errorf("second process exited after %v, want within 15s", took)
	}
	last := lastLine(string(out))
	if !strings.Contains(last, `"`+node+`"`) || !strings.Contains(last, "another live process") {
		t.Errorf("second process's last words do not name the node id and the clash: %q", last)
	}
	t.Logf("second process refused after %v: %s", took.Round(time.Millisecond), last)
	echo(t, base, "from the first, after the second gave up")

	// A crash leaves the lock until its session lapses (6s): a successor
	// with the id starts within it.
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	_, base, _ = startProcess(t, append(args, "--demo")...)
	t.Logf("successor ready %v after the first was killed", time.Since(start).Round(time.Millisecond))
	echo(t, base, "from the successor")
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
