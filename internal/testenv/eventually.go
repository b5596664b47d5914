package testenv

import (
	"testing"
	"time"
)

// Eventually fails t unless cond holds within timeout, checking it every
// 10 ms; what names the condition in the failure. For conditions only
// observable by looking: where a channel can say it, wait on the channel.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("%s: not within %v", what, timeout)
		}
	}
}
