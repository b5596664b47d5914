package gateway_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/gateway"
)

// BenchmarkClusterReply measures what cluster mode's logic costs one
// request, one at a time (concurrency 1), with the broker taken out: the
// benchmark plays the service and hands each reply straight to a node's
// DispatchReply. Each iteration sends one request down each of three
// paths, interleaved, so the machine's noise hits all three alike:
//
//   - single-node: no cluster;
//   - direct: cluster mode, the reply consumed by the waiting node (the
//     claim, and on a pollable route the pending record, before the
//     publish);
//   - forwarded: the reply consumed by another node, which stores it
//     (pollable route), looks the owner up and forwards it to the waiting
//     node's listener.
//
// The nodes share a correlation.MemoryRouter, so this is the gateway's own
// cost; Redis adds a round trip to direct and one more plus pub/sub to
// forwarded (BENCHMARKS.md has figures measured on Redis).
// p50/p99 per path are reported in µs (ns/op is the sum of the three):
//
//	go test -run '^$' -bench ClusterReply -benchtime 5000x -count 3 ./gateway/
func BenchmarkClusterReply(b *testing.B) {
	for _, mode := range []gateway.Mode{gateway.ModeSync, gateway.ModeAuto} {
		b.Run(string(mode), func(b *testing.B) {
			nodes := newClusterNodes(b, true, "direct", "waiter", "consumer")
			single := newFixture(b)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// One service per waiting gateway: it answers through the
			// consumer the path calls for.
			serve := func(waiter, consumer *fixture) chan struct{} {
				done := make(chan struct{})
				go func() {
					defer close(done)
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
				return done
			}
			paths := []struct {
				name string
				gw   *gateway.Gateway
				done chan struct{}
				lat  []time.Duration
			}{
				{name: "single-node", gw: single.gw, done: serve(single, single)},
				{name: "direct", gw: nodes[0].gw, done: serve(nodes[0].fixture, nodes[0].fixture)},
				{name: "forwarded", gw: nodes[1].gw, done: serve(nodes[1].fixture, nodes[2].fixture)},
			}
			route := &gateway.Route{Name: "r", Destination: "svc", Mode: mode, Wait: 10 * time.Second, Timeout: 20 * time.Second}
			body := []byte("ping")
			b.ResetTimer()
			for range b.N {
				for i := range paths {
					p := &paths[i]
					start := time.Now()
					out, err := p.gw.Do(ctx, &gateway.Request{Route: route, Message: envelope.Request{Method: "POST", Path: "/x", Body: body}})
					if err != nil || out.Accepted {
						b.Fatalf("%s: Do = %+v, %v", p.name, out, err)
					}
					p.lat = append(p.lat, time.Since(start))
				}
			}
			b.StopTimer()
			cancel()
			for _, p := range paths {
				<-p.done
				slices.Sort(p.lat)
				b.ReportMetric(float64(p.lat[len(p.lat)/2].Microseconds()), p.name+"-p50-µs")
				b.ReportMetric(float64(p.lat[len(p.lat)*99/100].Microseconds()), p.name+"-p99-µs")
			}
		})
	}
}
