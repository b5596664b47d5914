package correlation_test

import (
	"context"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
)

// A burst of large results is reclaimed once its TTL has passed, by Run
// alone: no new record is stored, nothing is read. The heap goes back near
// where it was before the burst.
func TestMemoryStoreReclaimsInBackground(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			ttl  = 10 * time.Second
			n    = 100
			size = 1 << 20
		)
		s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{ResultTTL: ttl, SweepInterval: time.Second})
		ctx, cancel := context.WithCancel(t.Context())
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			s.Run(ctx)
		}()

		base := heapInUse()
		for range n {
			id := correlation.NewID()
			if err := s.Pending(ctx, id, "", ttl); err != nil {
				t.Fatal(err)
			}
			if err := s.Complete(ctx, envelope.Reply{CorrelationID: id, Body: make([]byte, size)}); err != nil {
				t.Fatal(err)
			}
		}
		if s.Len() != n || s.Bytes() < n*size {
			t.Fatalf("after the burst: Len() = %d, Bytes() = %d", s.Len(), s.Bytes())
		}
		grown := heapInUse() - base
		if grown < n*size*9/10 {
			t.Fatalf("the burst grew the heap by %d bytes only", grown)
		}

		time.Sleep(ttl + time.Second) // past the TTL and one more sweep
		synctest.Wait()
		if s.Len() != 0 || s.Bytes() != 0 {
			t.Fatalf("after the TTL: Len() = %d, Bytes() = %d; want 0, 0 without any new record", s.Len(), s.Bytes())
		}
		left := heapInUse() - base
		t.Logf("heap: +%d MiB after the burst, %+d KiB after the TTL", grown>>20, left>>10)
		if left > 8<<20 {
			t.Errorf("the heap is still %d MiB above its baseline after the TTL", left>>20)
		}

		cancel()
		<-stopped // Run returns once ctx ends
	})
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
