package gateway_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/gateway"
)

// BenchmarkClusterReply measures what cluster mode costs one request, one
// at a time (concurrency 1), with the broker taken out: the benchmark
// plays the service and hands each reply straight to a node's
// DispatchReply. single-node has no Redis at all; cluster-direct pays the
// claim (and, on a pollable route, the pending record) before publishing;
// cluster-forwarded has the reply consumed by the other node, which stores
// it (pollable) and forwards it over Redis pub/sub. p50/p99 are reported
// per request in µs. Real Redis at 127.0.0.1:6379:
//
//	go test -run '^$' -bench ClusterReply -benchtime 5000x -count 3 ./gateway/
func BenchmarkClusterReply(b *testing.B) {
	cases := []struct {
		name             string
		cluster, forward bool
		mode             gateway.Mode
	}{
		{"single-node/sync", false, false, gateway.ModeSync},
		{"cluster-direct/sync", true, false, gateway.ModeSync},
		{"cluster-forwarded/sync", true, true, gateway.ModeSync},
		{"single-node/auto", false, false, gateway.ModeAuto},
		{"cluster-direct/auto", true, false, gateway.ModeAuto},
		{"cluster-forwarded/auto", true, true, gateway.ModeAuto},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			var waiter, consumer *fixture
			if tc.cluster {
				a, other := newCluster(b, redisAddr, true)
				waiter, consumer = a.fixture, a.fixture
				if tc.forward {
					consumer = other.fixture
				}
			} else {
				waiter = newFixture(b)
				consumer = waiter
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			served := make(chan struct{})
			go func() { // the service
				defer close(served)
				for {
					select {
					case <-ctx.Done():
						return
					case m := <-waiter.pub.msgs:
						req, err := envelope.DecodeRequest(m)
						if err != nil {
							b.Error(err)
							return
						}
						if _, err := consumer.gw.DispatchReply(ctx, envelope.Reply{
							CorrelationID: req.CorrelationID, Status: 200, Body: req.Body,
						}.Message()); err != nil {
							b.Error(err)
							return
						}
					}
				}
			}()
			route := &gateway.Route{Name: "r", Destination: "svc", Mode: tc.mode, Wait: 10 * time.Second, Timeout: 20 * time.Second}
			body := []byte("ping")
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				out, err := waiter.gw.Do(ctx, gateway.Request{Route: route, Message: envelope.Request{Method: "POST", Path: "/x", Body: body}})
				if err != nil || out.Accepted {
					b.Fatalf("Do = %+v, %v", out, err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			cancel()
			<-served
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
