package nats

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	natsgo "github.com/nats-io/nats.go"
)

func testDelivery() delivery { return delivery{raw: &natsgo.Msg{}} }

// Fast handlers: one reader goes through everything submitted (the replies
// then leave in few writes), every message once.
func TestPoolFastHandlersOneReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var handled atomic.Int64
		p := newPool(64, 0, false, func(delivery) { handled.Add(1) })
		for range 500 {
			if !p.submit(t.Context(), testDelivery()) {
				t.Fatal("submit refused")
			}
		}
		synctest.Wait()
		time.Sleep(escapeAfter) // a stale escape finds the queue empty
		synctest.Wait()
		p.qmu.Lock()
		readers := p.readers
		p.qmu.Unlock()
		if handled.Load() != 500 || readers != 1 {
			t.Errorf("%d handled by %d readers, want 500 by 1", handled.Load(), readers)
		}
		// Parked for idleFor, the reader exits.
		time.Sleep(idleFor)
		synctest.Wait()
		p.qmu.Lock()
		readers = p.readers
		p.qmu.Unlock()
		if readers != 0 {
			t.Errorf("%d readers after idleFor, want 0", readers)
		}
		p.stop()
	})
}

// Slow handlers: messages waiting behind a busy reader get readers of their
// own after escapeAfter, up to n, never more.
func TestPoolSlowHandlersEscape(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 4
		var running, peak atomic.Int64
		release := make(chan struct{})
		p := newPool(n, 0, false, func(delivery) {
			r := running.Add(1)
			for {
				if pk := peak.Load(); r <= pk || peak.CompareAndSwap(pk, r) {
					break
				}
			}
			<-release
			running.Add(-1)
		})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		submitted := make(chan struct{})
		go func() {
			defer close(submitted)
			for range 2 * n {
				p.submit(ctx, testDelivery()) // blocks once n are in hand
			}
		}()
		synctest.Wait()
		if r := running.Load(); r != 1 {
			t.Fatalf("%d handlers running before escapeAfter, want 1", r)
		}
		time.Sleep(escapeAfter)
		synctest.Wait()
		if r := running.Load(); r != n {
			t.Fatalf("%d handlers running after escapeAfter, want %d", r, n)
		}
		close(release)
		<-submitted
		synctest.Wait()
		if peak.Load() != n {
			t.Errorf("at most %d handlers at once, want %d", peak.Load(), n)
		}
		cancel()
		p.stop()
	})
}

// stop lets the readers settle what is queued (work sees the ended
// context), wakes the parked ones and waits for all of them.
func TestPoolStopSettlesQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var settled int
		block := make(chan struct{})
		first := true
		p := newPool(8, 0, false, func(delivery) {
			mu.Lock()
			wait := first
			first = false
			mu.Unlock()
			if wait {
				<-block
			}
			mu.Lock()
			settled++
			mu.Unlock()
		})
		ctx, cancel := context.WithCancel(t.Context())
		for range 3 {
			p.submit(ctx, testDelivery())
		}
		synctest.Wait()
		cancel()
		stopped := make(chan struct{})
		go func() { p.stop(); close(stopped) }()
		synctest.Wait()
		if p.submit(ctx, testDelivery()) {
			t.Error("submit after stop took a message")
		}
		close(block)
		<-stopped
		if settled != 3 {
			t.Errorf("%d messages settled, want 3", settled)
		}
	})
}
