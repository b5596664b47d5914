package rabbitmqtest

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The lock is seen through a separate open file, as another process would.
func TestLocks(t *testing.T) {
	// A lock file of its own: the real one may be held by other packages' tests.
	lockPath = filepath.Join(t.TempDir(), "lock")
	probe := func(how int) bool {
		f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
			return false
		}
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return true
	}
	t.Run("shared", func(t *testing.T) {
		Shared(t)
		if !probe(syscall.LOCK_SH) {
			t.Error("a second shared holder was refused")
		}
		if probe(syscall.LOCK_EX) {
			t.Error("an exclusive holder got in while shared")
		}
	})
	t.Run("exclusive", func(t *testing.T) {
		Exclusive(t)
		if probe(syscall.LOCK_SH) {
			t.Error("a shared holder got in while exclusive")
		}
	})
	// A test holding the server shared may stop it: its hold turns
	// exclusive, and back to shared when the exclusive part ends.
	t.Run("shared then exclusive", func(t *testing.T) {
		Shared(t)
		t.Run("stop", func(t *testing.T) {
			Exclusive(t)
			if probe(syscall.LOCK_SH) {
				t.Error("a shared holder got in while exclusive")
			}
		})
		if !probe(syscall.LOCK_SH) || probe(syscall.LOCK_EX) {
			t.Error("not back to shared after the exclusive part")
		}
	})
	if !probe(syscall.LOCK_EX) {
		t.Error("the lock was not released when the tests ended")
	}
}
