package memory_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/memory"
)

// BenchmarkPublishHandle measures publish → handler throughput: one op is one
// message published (from all Ps at once) and handled, with a gateway-sized
// message (unique key, 8 headers, 1 KiB body).
func BenchmarkPublishHandle(b *testing.B) {
	for _, workers := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			benchmarkPublishHandle(b, workers)
		})
	}
}

func benchmarkPublishHandle(b *testing.B, workers int) {
	br := memory.New(memory.Config{})
	defer br.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var handled atomic.Int64
	all := make(chan struct{})
	var target atomic.Int64
	target.Store(-1)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- br.Subscribe(ctx, "bench", func(context.Context, brokers.Message) error {
			if handled.Add(1) == target.Load() {
				close(all)
			}
			return nil
		}, brokers.WithConcurrency(workers), brokers.WithReady(func() { close(ready) }))
	}()
	<-ready

	headers := map[string]string{
		"correlation-id": "0190f1c4-8a2b-7c3d-9e4f-5a6b7c8d9e0f",
		"reply-to":       "syncgate.replies.node-1",
		"deadline":       "2026-01-02T15:04:05.000Z",
		"content-type":   "application/json",
		"traceparent":    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"http-method":    "POST",
		"http-path":      "/v1/orders",
		"http-query":     "",
	}
	body := make([]byte, 1024)
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	target.Store(int64(b.N))
	if handled.Load() >= int64(b.N) {
		close(all)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m := brokers.Message{Key: fmt.Sprint(seq.Add(1)), Headers: headers, Body: body}
			if err := br.Publish(ctx, "bench", m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	<-all
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
