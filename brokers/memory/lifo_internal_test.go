package memory

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/testenv"
)

// TestLIFOMutexOrder: waiters get the mutex latest first, one at a time.
func TestLIFOMutexOrder(t *testing.T) {
	var l lifoMutex
	l.lock(make(chan struct{}, 1))
	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	const n = 4
	for i := range n {
		wg.Go(func() {
			l.lock(make(chan struct{}, 1))
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			l.unlock()
		})
		testenv.Eventually(t, 5*time.Second, "waiter queued", func() bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			return len(l.waiters) == i+1
		})
	}
	l.unlock()
	wg.Wait()
	if want := []int{3, 2, 1, 0}; !slices.Equal(order, want) {
		t.Fatalf("waiters got the mutex in order %v, want %v", order, want)
	}
	if l.locked || len(l.waiters) != 0 {
		t.Fatalf("after the last unlock: locked %v, %d waiters", l.locked, len(l.waiters))
	}
}

// TestLIFOMutexExcludes: never two holders at once.
func TestLIFOMutexExcludes(t *testing.T) {
	var l lifoMutex
	var held, total int
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			wake := make(chan struct{}, 1)
			for range 1000 {
				l.lock(wake)
				held++
				if held != 1 {
					t.Errorf("%d holders", held)
				}
				total++
				held--
				l.unlock()
			}
		})
	}
	wg.Wait()
	if total != 8000 {
		t.Fatalf("%d turns, want 8000", total)
	}
}
