package kafka

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
)

// The request/reply floor the gateway is compared to: the same round trip
// (publish a request, a service consumes it and publishes a reply on a
// reply topic, the requester consumes the reply) on the same in-process
// kfake broker, first with kafka-go used directly, then through this
// package's Publisher and Subscriber. Each reports p50/p99/p999 latency in
// microseconds and requests per second.
//
//	go test -run '^$' -bench RequestReply -benchtime 2000x ./brokers/kafka/

// latencies records one duration per request.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B, elapsed time.Duration) {
	slices.Sort(l.d)
	q := func(p float64) float64 {
		if len(l.d) == 0 {
			return 0
		}
		return float64(l.d[min(len(l.d)-1, int(p*float64(len(l.d))))].Microseconds())
	}
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(q(0.999), "p999-µs")
	b.ReportMetric(float64(len(l.d))/elapsed.Seconds(), "req/s")
}

// replyRouter hands each reply to the request waiting for its key.
type replyRouter struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func (r *replyRouter) wait(id string) chan struct{} {
	ch := make(chan struct{}, 1)
	r.mu.Lock()
	r.m[id] = ch
	r.mu.Unlock()
	return ch
}

func (r *replyRouter) deliver(id string) {
	r.mu.Lock()
	ch := r.m[id]
	delete(r.m, id)
	r.mu.Unlock()
	if ch != nil {
		ch <- struct{}{}
	}
}

// runRequests runs b.N requests from conc goroutines; do sends one request
// and waits for its reply.
func runRequests(b *testing.B, conc int, do func(ctx context.Context, id string) error) {
	var lat latencies
	lat.d = make([]time.Duration, 0, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	b.ResetTimer()
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				t0 := time.Now()
				err := do(ctx, uuid.NewString())
				cancel()
				if err != nil {
					errs <- err
					return
				}
				lat.add(time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	lat.report(b, elapsed)
}

// BenchmarkRawRequestReply: kafka-go alone. One Writer per side, one
// partition-reader per topic (single-partition topics), the service replies
// from a goroutine per request. "linger" is the Writer's BatchTimeout (and
// BatchSize 100, this package's defaults); "nolinger" is BatchSize 1, every
// record its own produce request.
func BenchmarkRawRequestReply(b *testing.B) {
	for _, bc := range []struct {
		name      string
		batchSize int
		conc      int
	}{
		{"linger=1ms/c=1", 100, 1},
		{"nolinger/c=1", 1, 1},
		{"linger=1ms/c=64", 100, 64},
		{"nolinger/c=64", 1, 64},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := newFake(b)
			reqTopic, repTopic := c.topic(b, "raw.req", 1), c.topic(b, "raw.rep", 1)
			writer := func() *kafkago.Writer {
				w := &kafkago.Writer{
					Addr: kafkago.TCP(c.brokers...), Balancer: kafkago.Murmur2Balancer{},
					BatchTimeout: time.Millisecond, BatchSize: bc.batchSize, RequiredAcks: kafkago.RequireOne,
					Transport: &kafkago.Transport{},
				}
				b.Cleanup(func() {
					_ = w.Close()
					w.Transport.(*kafkago.Transport).CloseIdleConnections()
				})
				return w
			}
			reader := func(topic string) *kafkago.Reader {
				r := kafkago.NewReader(kafkago.ReaderConfig{
					Brokers: c.brokers, Topic: topic, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 500 * time.Millisecond,
					ReadLagInterval: -1, ReadBackoffMin: 50 * time.Millisecond,
				})
				b.Cleanup(func() { _ = r.Close() })
				return r
			}
			reqW, repW := writer(), writer()
			reqR, repR := reader(reqTopic), reader(repTopic)
			ctx, cancel := context.WithCancel(context.Background())
			var bg sync.WaitGroup
			b.Cleanup(func() { cancel(); bg.Wait() })

			// The service: read a request, reply from its own goroutine.
			sem := make(chan struct{}, 64)
			bg.Go(func() {
				var replies sync.WaitGroup
				defer replies.Wait()
				for {
					m, err := reqR.FetchMessage(ctx)
					if err != nil {
						return
					}
					sem <- struct{}{}
					replies.Go(func() {
						defer func() { <-sem }()
						_ = repW.WriteMessages(ctx, kafkago.Message{Topic: repTopic, Key: m.Key, Value: m.Value})
					})
				}
			})
			router := &replyRouter{m: map[string]chan struct{}{}}
			bg.Go(func() {
				for {
					m, err := repR.FetchMessage(ctx)
					if err != nil {
						return
					}
					router.deliver(string(m.Key))
				}
			})
			body := []byte(`{"amount":42}`)
			runRequests(b, bc.conc, func(ctx context.Context, id string) error {
				ch := router.wait(id)
				if err := reqW.WriteMessages(ctx, kafkago.Message{Topic: reqTopic, Key: []byte(id), Value: body}); err != nil {
					return err
				}
				select {
				case <-ch:
					return nil
				case <-ctx.Done():
					return fmt.Errorf("reply %s: %w", id, ctx.Err())
				}
			})
		})
	}
}

// BenchmarkBackendRequestReply: the same round trip through this package,
// as the gateway and a responder service use it: envelope messages, a
// consumer group on a 4-partition service topic, a reply inbox.
func BenchmarkBackendRequestReply(b *testing.B) {
	for _, conc := range []int{1, 64} {
		b.Run("c="+strconv.Itoa(conc), func(b *testing.B) {
			c := newFake(b)
			cfg := c.config()
			service, inbox := c.topic(b, "bench.svc", 4), "syncgate.reply.bench"
			gwPub, svcPub := c.publisher(b, cfg), c.publisher(b, cfg)
			subscribe(b, c.subscriber(b, cfg), service, echoService(svcPub), brokers.WithConcurrency(64))
			router := &replyRouter{m: map[string]chan struct{}{}}
			subscribe(b, c.subscriber(b, cfg), inbox, func(ctx context.Context, m brokers.Message) error {
				router.deliver(m.Headers[envelope.CorrelationID])
				return nil
			}, brokers.AsInbox(), brokers.WithConcurrency(4))
			body := []byte(`{"amount":42}`)
			runRequests(b, conc, func(ctx context.Context, id string) error {
				ch := router.wait(id)
				err := gwPub.Publish(ctx, service, envelope.Request{CorrelationID: id, ReplyTo: inbox, Body: body}.Message())
				if err != nil {
					return err
				}
				select {
				case <-ch:
					return nil
				case <-ctx.Done():
					return fmt.Errorf("reply %s: %w", id, ctx.Err())
				}
			})
		})
	}
}
