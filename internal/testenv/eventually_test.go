package testenv_test

import (
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/testenv"
)

func TestEventuallyReturnsOnceCondHolds(t *testing.T) {
	calls := 0
	testenv.Eventually(t, 5*time.Second, "third call", func() bool { calls++; return calls == 3 })
	if calls != 3 {
		t.Fatalf("cond called %d times, want 3", calls)
	}
}
