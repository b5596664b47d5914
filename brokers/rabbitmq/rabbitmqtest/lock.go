// Package rabbitmqtest coordinates the test packages that share the local
// RabbitMQ server. go test runs packages in parallel processes, and the
// outage tests of brokers/rabbitmq stop and restart the server: they hold
// it Exclusive, every other test that needs it holds it Shared, through a
// file lock that all those processes see.
package rabbitmqtest

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockPath is the same for every process of one user on the machine.
var lockPath = filepath.Join(os.TempDir(), "syncgate-rabbitmq-tests.lock")

// wait bounds how long a test waits for the others: an outage test takes
// seconds, a whole package of shared users a few minutes.
const wait = 10 * time.Minute

// Shared holds the server shared until t ends: no outage test of another
// package stops it meanwhile.
func Shared(t testing.TB) { lock(t, false) }

// Exclusive holds the server alone until t ends, so a test may stop and
// restart it without breaking the tests of other packages. A test that
// holds it Shared already may take it Exclusive: the process's one lock is
// converted, and goes back to shared when the exclusive hold ends.
func Exclusive(t testing.TB) { lock(t, true) }

// The process holds one file lock, whatever its tests ask for: shared while
// any hold is shared, exclusive while any is exclusive. (A second open file
// of the same process would wait for the first.) Tests of one package run
// one at a time, so the counts only change between them and on cleanups.
var held struct {
	sync.Mutex
	f            *os.File
	shared, excl int
	state        int // 0, syscall.LOCK_SH or syscall.LOCK_EX
}

func lock(t testing.TB, exclusive bool) {
	t.Helper()
	held.Lock()
	defer held.Unlock()
	if held.f == nil {
		f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			t.Fatalf("rabbitmqtest: open %s: %v", lockPath, err)
		}
		held.f = f
	}
	if exclusive {
		held.excl++
	} else {
		held.shared++
	}
	if err := settle(t); err != nil {
		if exclusive {
			held.excl--
		} else {
			held.shared--
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		held.Lock()
		defer held.Unlock()
		if exclusive {
			held.excl--
		} else {
			held.shared--
		}
		_ = settle(nil)
	})
}

// settle brings the file lock to what the counts ask for, waiting (bounded
// by wait) for other processes. t, when not nil, is told about a wait.
func settle(t testing.TB) error {
	want := 0
	switch {
	case held.excl > 0:
		want = syscall.LOCK_EX
	case held.shared > 0:
		want = syscall.LOCK_SH
	}
	if want == held.state {
		return nil
	}
	if want == 0 {
		held.state = 0
		return syscall.Flock(int(held.f.Fd()), syscall.LOCK_UN)
	}
	deadline := time.Now().Add(wait)
	logged := false
	for {
		err := syscall.Flock(int(held.f.Fd()), want|syscall.LOCK_NB)
		if err == nil {
			held.state = want
			return nil
		}
		if err != syscall.EWOULDBLOCK {
			return fmt.Errorf("rabbitmqtest: lock %s: %w", lockPath, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rabbitmqtest: the RabbitMQ server was not free within %v (lock %s)", wait, lockPath)
		}
		if !logged && t != nil {
			t.Logf("rabbitmqtest: waiting for other test packages to release the RabbitMQ server (%s)", lockPath)
			logged = true
		}
		time.Sleep(20 * time.Millisecond) // polling a file lock: there is nothing to wait on
	}
}
