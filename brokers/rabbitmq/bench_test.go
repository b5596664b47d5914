package rabbitmq_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/brokers/rabbitmq"
	"github.com/syncgate/syncgate/internal/testenv"
)

// The benchmarks measure request/reply round trips on the real server:
//
//   - BenchmarkRawRPC: a plain amqp091-go RPC loop with an exclusive,
//     server-named reply queue — the floor the gateway is compared to —
//     once with no guarantees (transient messages, no confirms, auto-ack,
//     classic queue) and once with the guarantees this package gives
//     (publisher confirms on both sides, persistent messages, quorum request
//     queue, manual acks);
//   - BenchmarkClientRPC: the same loop through Client (Publish, a service
//     Subscribe that answers with Publish, the node's reply inbox), with a
//     reply queue (persistent replies, the default, and with
//     TransientReplies), with direct reply-to, and in the latency profile
//     (classic work queue, transient requests and replies).
//
// Each reports p50 and p99 latency at concurrency 1 and requests per second
// with 64 requests in flight, for example:
//
//	go test -run '^$' -bench RPC -benchtime 3000x ./brokers/rabbitmq/

type rpcFunc func(ctx context.Context, body []byte) error

func runRPC(b *testing.B, rpc rpcFunc) {
	b.Run("c=1", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		body := []byte("ping")
		for b.Loop() {
			start := time.Now()
			if err := rpc(b.Context(), body); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	})
	b.Run("inflight=64", func(b *testing.B) {
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		n := int64(b.N)
		b.ResetTimer()
		start := time.Now()
		for range 64 {
			wg.Go(func() {
				body := []byte("ping")
				for next.Add(1) <= n {
					if err := rpc(b.Context(), body); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	})
}

// waiters is the nats-style reply mux: one reply consumer, a map of waiters.
type waiters struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func (w *waiters) add(id string) chan struct{} {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	w.m[id] = ch
	w.mu.Unlock()
	return ch
}

func (w *waiters) done(id string) {
	w.mu.Lock()
	ch := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	if ch != nil {
		ch <- struct{}{}
	}
}

func (w *waiters) drop(id string) {
	w.mu.Lock()
	delete(w.m, id)
	w.mu.Unlock()
}

func wait(ctx context.Context, ch chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Second):
		return fmt.Errorf("no reply within 10s")
	}
}

func BenchmarkRawRPC(b *testing.B) {
	for _, safe := range []bool{false, true} {
		name := "fast"
		if safe {
			name = "confirms+persistent+quorum"
		}
		b.Run(name, func(b *testing.B) { runRPC(b, rawRPC(b, safe)) })
	}
}

func rawRPC(b *testing.B, safe bool) rpcFunc {
	testenv.RequireRabbitMQ(b)
	q := unique("sgbench.raw")
	cleanupQueue(b, q)
	var background sync.WaitGroup // ends once the connections are closed
	b.Cleanup(background.Wait)
	dial := func() (*amqp.Connection, *amqp.Channel) {
		conn, err := amqp.Dial(testenv.RabbitMQURL())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = conn.Close() })
		ch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		if safe {
			if err := ch.Confirm(false); err != nil {
				b.Fatal(err)
			}
		}
		return conn, ch
	}
	_, req := dial()
	_, svc := dial()
	var args amqp.Table
	mode := amqp.Transient
	if safe {
		args, mode = amqp.Table{"x-queue-type": "quorum"}, amqp.Persistent
	}
	if _, err := svc.QueueDeclare(q, true, false, false, false, args); err != nil {
		b.Fatal(err)
	}
	if err := svc.Qos(64, 0, false); err != nil {
		b.Fatal(err)
	}
	reqs, err := svc.Consume(q, "", !safe, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	var svcMu sync.Mutex // PublishWithDeferredConfirm and Ack from several goroutines
	for range 64 {
		background.Go(func() {
			for d := range reqs {
				dc, err := svc.PublishWithDeferredConfirm("", d.ReplyTo, false, false, amqp.Publishing{CorrelationId: d.CorrelationId, Body: d.Body, DeliveryMode: mode})
				if err != nil {
					return
				}
				if dc != nil {
					dc.Wait()
				}
				if safe {
					svcMu.Lock()
					_ = d.Ack(false)
					svcMu.Unlock()
				}
			}
		})
	}
	rq, err := req.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	replies, err := req.Consume(rq.Name, "", true, true, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	w := &waiters{m: map[string]chan struct{}{}}
	background.Go(func() {
		for d := range replies {
			w.done(d.CorrelationId)
		}
	})
	var seq atomic.Uint64
	return func(ctx context.Context, body []byte) error {
		id := strconv.FormatUint(seq.Add(1), 10)
		ch := w.add(id)
		dc, err := req.PublishWithDeferredConfirm("", q, false, false, amqp.Publishing{CorrelationId: id, ReplyTo: rq.Name, Body: body, DeliveryMode: mode})
		if err != nil {
			w.drop(id)
			return err
		}
		if dc != nil && !dc.Wait() {
			w.drop(id)
			return fmt.Errorf("nacked")
		}
		return wait(ctx, ch)
	}
}

func BenchmarkClientRPC(b *testing.B) {
	for _, v := range []struct {
		name string
		set  func(*rabbitmq.Config)
	}{
		{"reply-queue", func(*rabbitmq.Config) {}},
		{"reply-queue/transient-replies", func(c *rabbitmq.Config) { c.TransientReplies = true }},
		{"direct-reply-to", func(c *rabbitmq.Config) { c.DirectReplyTo = true }},
		{"classic-transient", func(c *rabbitmq.Config) {
			c.QueueType = rabbitmq.QueueTypeClassic
			c.TransientRequests, c.TransientReplies = true, true
		}},
	} {
		b.Run(v.name, func(b *testing.B) { runRPC(b, clientRPC(b, v.set)) })
	}
}

func clientRPC(b *testing.B, set func(*rabbitmq.Config)) rpcFunc {
	cfg := testConfig(b)
	set(&cfg)
	gw, svc := dial(b, cfg), dial(b, cfg)
	work, inbox := unique("sgbench.work"), unique("syncgate.reply.bench")
	cleanupQueue(b, work)
	cleanupQueue(b, inbox)
	subscribe(b, svc, work, func(ctx context.Context, m brokers.Message) error {
		req, err := envelope.DecodeRequest(m)
		if err != nil {
			return nil
		}
		return svc.Publish(ctx, req.ReplyTo, envelope.Reply{CorrelationID: req.CorrelationID, Body: req.Body}.Message())
	}, brokers.WithConcurrency(64))
	w := &waiters{m: map[string]chan struct{}{}}
	subscribe(b, gw, inbox, func(_ context.Context, m brokers.Message) error {
		w.done(m.Headers[envelope.CorrelationID])
		return nil
	}, brokers.AsInbox(), brokers.WithConcurrency(8))
	var seq atomic.Uint64
	return func(ctx context.Context, body []byte) error {
		id := fmt.Sprintf("0190a9b2-7c4d-7e8f-9a0b-%012d", seq.Add(1))
		ch := w.add(id)
		m := envelope.Request{CorrelationID: id, ReplyTo: inbox, Deadline: time.Now().Add(30 * time.Second), Body: body}.Message()
		if err := gw.Publish(ctx, work, m); err != nil {
			w.drop(id)
			return err
		}
		return wait(ctx, ch)
	}
}
