package correlation_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
)

// BenchmarkRegistry measures one request's life in the registry: register,
// deliver, receive and cancel, from all Ps at once.
func BenchmarkRegistry(b *testing.B) {
	r := correlation.NewRegistry()
	var worker atomic.Int64
	const block = 1 << 14
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// Ids are made per goroutine ahead of time, recycled block by block.
		w := worker.Add(1)
		ids := make([]string, block)
		for i := range ids {
			ids[i] = fmt.Sprintf("%08x-%04x-7000-8000-000000000000", i, w)
		}
		i := 0
		for pb.Next() {
			id := ids[i%block]
			i++
			wt, err := r.Register(id)
			if err != nil {
				b.Fatal(err)
			}
			if !r.Deliver(envelope.Reply{CorrelationID: id}) {
				b.Fatal("Deliver = false")
			}
			<-wt.C()
			wt.Cancel()
		}
	})
	b.StopTimer()
	reportOpsPerSec(b)
	if r.Len() != 0 {
		b.Fatalf("Len() = %d", r.Len())
	}
}

// BenchmarkRegistryNewID is BenchmarkRegistry with a fresh NewID per
// request, as the gateway does it.
func BenchmarkRegistryNewID(b *testing.B) {
	r := correlation.NewRegistry()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := correlation.NewID()
			wt, err := r.Register(id)
			if err != nil {
				b.Fatal(err)
			}
			r.Deliver(envelope.Reply{CorrelationID: id})
			<-wt.C()
			wt.Cancel()
		}
	})
	reportOpsPerSec(b)
}

func BenchmarkNewID(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = correlation.NewID()
		}
	})
	reportOpsPerSec(b)
}

// BenchmarkMemoryStore measures Pending + Complete + Get of one request on
// a store that holds thousands of records: each worker deletes the record
// it stored ring requests earlier (what expiry does in production), so the
// store stays at half its cap, never full.
func BenchmarkMemoryStore(b *testing.B) {
	const max = 10_000
	s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{MaxEntries: max})
	ctx := b.Context()
	ring := max / 2 / runtime.GOMAXPROCS(0)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ids := make([]string, ring)
		i := 0
		for pb.Next() {
			if old := ids[i%ring]; old != "" {
				if err := s.Delete(ctx, old); err != nil {
					b.Fatal(err)
				}
			}
			id := correlation.NewID()
			ids[i%ring] = id
			i++
			if err := s.Pending(ctx, id, "", time.Minute); err != nil {
				b.Fatal(err)
			}
			if err := s.Complete(ctx, envelope.Reply{CorrelationID: id}); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Get(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	reportOpsPerSec(b)
	if s.Len() > max {
		b.Fatalf("Len() = %d, cap %d", s.Len(), max)
	}
}

// BenchmarkMemoryStoreCycle measures one polled request's whole life in
// the store, Pending + Complete (1 KiB reply) + Get + Delete, from all Ps
// at once, on a store that never fills: the cost of the lock and of the
// bookkeeping, without eviction or refusal.
func BenchmarkMemoryStoreCycle(b *testing.B) {
	s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
	ctx := b.Context()
	body := make([]byte, 1024)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := correlation.NewID()
			if err := s.Pending(ctx, id, "", time.Minute); err != nil {
				b.Fatal(err)
			}
			if err := s.Complete(ctx, envelope.Reply{CorrelationID: id, Body: body}); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Get(ctx, id); err != nil {
				b.Fatal(err)
			}
			if err := s.Delete(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
	reportOpsPerSec(b)
	if s.Len() != 0 {
		b.Fatalf("Len() = %d", s.Len())
	}
}

// BenchmarkMemoryStoreRoom measures the admission check of a request that
// may need a record later (an auto route), from all Ps at once: lock-free
// below the bounds; on a full store it takes the lock to look for expired
// records before refusing.
func BenchmarkMemoryStoreRoom(b *testing.B) {
	for _, full := range []bool{false, true} {
		b.Run(fmt.Sprint("full=", full), func(b *testing.B) {
			s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{MaxEntries: 1000})
			n := 500
			if full {
				n = 1000
			}
			for range n {
				if err := s.Pending(b.Context(), correlation.NewID(), "", time.Hour); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.Room(); (err != nil) != full {
						b.Fatalf("Room() = %v", err)
					}
				}
			})
		})
	}
}

func reportOpsPerSec(b *testing.B) {
	b.Helper()
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "ops/s")
	}
}
