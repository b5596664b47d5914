package correlation_test

import (
	"errors"
	"fmt"
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

// BenchmarkMemoryStore measures Pending + Complete + Get of one request on a
// store kept full, so eviction is part of the cost.
func BenchmarkMemoryStore(b *testing.B) {
	const max = 10_000
	s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{MaxEntries: max})
	ctx := b.Context()
	var worker, evicted atomic.Int64
	const block = 1 << 15 // > max: a reused id was evicted long ago
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := worker.Add(1)
		ids := make([]string, block)
		for i := range ids {
			ids[i] = fmt.Sprintf("%08x-%04x-7000-8000-000000000000", i, w)
		}
		i := 0
		for pb.Next() {
			id := ids[i%block]
			i++
			if err := s.Pending(ctx, id, time.Minute); err != nil {
				b.Fatal(err)
			}
			// A goroutine descheduled between two calls (GC, a busy host)
			// can come back to find its record evicted by max inserts of
			// the others: count that, it is the store doing its job.
			err := s.Complete(ctx, envelope.Reply{CorrelationID: id})
			if err == nil {
				_, err = s.Get(ctx, id)
			}
			switch {
			case errors.Is(err, correlation.ErrNotFound):
				evicted.Add(1)
			case err != nil:
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	reportOpsPerSec(b)
	b.ReportMetric(float64(evicted.Load())/float64(b.N), "evicted/op")
	if s.Len() > max {
		b.Fatalf("Len() = %d, cap %d", s.Len(), max)
	}
}

func reportOpsPerSec(b *testing.B) {
	b.Helper()
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "ops/s")
	}
}
