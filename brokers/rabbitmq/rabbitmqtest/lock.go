// Package rabbitmqtest coordinates the test packages that share the local
// RabbitMQ server. go test runs packages in parallel processes, and the
// outage tests of brokers/rabbitmq stop and restart the server: they hold
// it Exclusive, every other test that needs it holds it Shared, through a
// file lock that all those processes see.
package rabbitmqtest

import (
	"os"
	"path/filepath"
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
// package stops it meanwhile. A process must not take Exclusive while it
// holds Shared (it would wait for itself).
func Shared(t testing.TB) { lock(t, syscall.LOCK_SH) }

// Exclusive holds the server alone until t ends, so a test may stop and
// restart it without breaking the tests of other packages.
func Exclusive(t testing.TB) { lock(t, syscall.LOCK_EX) }

func lock(t testing.TB, how int) {
	t.Helper()
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("rabbitmqtest: open %s: %v", lockPath, err)
	}
	deadline := time.Now().Add(wait)
	logged := false
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if err != syscall.EWOULDBLOCK {
			_ = f.Close()
			t.Fatalf("rabbitmqtest: lock %s: %v", lockPath, err)
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			t.Fatalf("rabbitmqtest: the RabbitMQ server was not free within %v (lock %s)", wait, lockPath)
		}
		if !logged {
			t.Logf("rabbitmqtest: waiting for other test packages to release the RabbitMQ server (%s)", lockPath)
			logged = true
		}
		time.Sleep(20 * time.Millisecond) // polling a file lock: there is nothing to wait on
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	})
}
