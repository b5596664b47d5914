package nats_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/brokers/nats"
)

// BenchmarkRoundTrip measures request/reply round trips on the real server,
// through Client (client) and through plain nats.go (raw), in the same run:
//
//   - core/raw: nc.Request to a queue subscription that answers with
//     msg.Respond, nats.go's own request/reply (one shared reply
//     subscription, a map of waiters): the floor.
//   - core/client: Publish of an envelope request, a service Subscribe
//     (concurrency 64) that answers with Publish to the request's reply-to,
//     and the node's inbox Subscribe (AsInbox, concurrency 8) waking a
//     waiter, as the gateway does.
//   - jetstream/raw: a JetStream publish (waiting for the stream's ack) to
//     a file work-queue stream, a durable pull consumer that answers on
//     core NATS and acks, and a reply subscription with waiters: the same
//     guarantees as the client's, by hand.
//   - jetstream/client: core/client with Mode jetstream.
//
// c=1 alternates one raw and one client round trip per iteration and
// reports both p50 and p99 and the p50 ratio client/raw; inflight=64 runs
// b.N round trips each way, 64 at a time, in alternating phases of 500,
// and reports both rates and the ratio raw/client (the client's slowdown):
//
//	go test -run '^$' -bench RoundTrip -benchtime 3000x ./brokers/nats/
func BenchmarkRoundTrip(b *testing.B) {
	for _, mode := range []string{nats.ModeCore, nats.ModeJetStream} {
		b.Run(mode, func(b *testing.B) {
			cfg := testConfig(b, mode)
			cfg.Storage = nats.StorageFile // the default: what a deployment gets
			raw, client := rawRoundTrip(b, cfg), clientRoundTrip(b, cfg)
			b.Run("c=1", func(b *testing.B) {
				var rawLat, clientLat []time.Duration
				body := []byte("ping")
				for b.Loop() {
					for _, f := range []struct {
						rt  roundTrip
						lat *[]time.Duration
					}{{raw, &rawLat}, {client, &clientLat}} {
						start := time.Now()
						if err := f.rt(b.Context(), body); err != nil {
							b.Fatal(err)
						}
						*f.lat = append(*f.lat, time.Since(start))
					}
				}
				rp50, rp99 := percentiles(rawLat)
				cp50, cp99 := percentiles(clientLat)
				b.ReportMetric(float64(rp50.Microseconds()), "raw-p50-µs")
				b.ReportMetric(float64(rp99.Microseconds()), "raw-p99-µs")
				b.ReportMetric(float64(cp50.Microseconds()), "client-p50-µs")
				b.ReportMetric(float64(cp99.Microseconds()), "client-p99-µs")
				b.ReportMetric(float64(cp50)/float64(rp50), "p50-ratio")
			})
			b.Run("inflight=64", func(b *testing.B) {
				// Phases of phase round trips, raw and client in turn, so
				// that a load that comes and goes on the machine weighs on
				// both alike.
				const phase = 500
				var rawTime, clientTime time.Duration
				for done := 0; done < b.N; done += phase {
					n := min(phase, b.N-done)
					rawTime += inflight(b, raw, n)
					clientTime += inflight(b, client, n)
				}
				rawRate, clientRate := float64(b.N)/rawTime.Seconds(), float64(b.N)/clientTime.Seconds()
				b.ReportMetric(rawRate, "raw-req/s")
				b.ReportMetric(clientRate, "client-req/s")
				b.ReportMetric(rawRate/clientRate, "rate-ratio")
			})
		})
	}
}

type roundTrip func(ctx context.Context, body []byte) error

func percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100]
}

// inflight runs n round trips on 64 goroutines and returns how long they
// took.
func inflight(b *testing.B, rt roundTrip, n int) time.Duration {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	errs := make(chan error, 64)
	start := time.Now()
	for range 64 {
		wg.Go(func() {
			body := []byte("ping")
			for next.Add(1) <= int64(n) {
				if err := rt(b.Context(), body); err != nil {
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
	return elapsed
}

// waiters is the reply mux: one reply subscription, a map of waiters.
type waiters struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func newWaiters() *waiters { return &waiters{m: make(map[string]chan struct{})} }

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
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("no reply within 10s")
	}
}

func clientRoundTrip(b *testing.B, cfg nats.Config) roundTrip {
	gw, svc := dial(b, cfg), dial(b, cfg)
	work, inbox := unique("sgbench.work."), cfg.ReplyPrefix+"bench"
	subscribe(b, svc, work, func(ctx context.Context, m brokers.Message) error {
		req, err := envelope.DecodeRequest(m)
		if err != nil {
			return nil
		}
		return svc.Publish(ctx, req.ReplyTo, envelope.Reply{CorrelationID: req.CorrelationID, Body: req.Body}.Message())
	}, brokers.WithConcurrency(64))
	w := newWaiters()
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

func rawRoundTrip(b *testing.B, cfg nats.Config) roundTrip {
	connect := func() *natsgo.Conn {
		nc, err := natsgo.Connect(cfg.URL)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		return nc
	}
	req, svc := connect(), connect()
	subject := unique("sgbench.raw.")
	if cfg.Mode == nats.ModeCore {
		if _, err := svc.QueueSubscribe(subject, "svc", func(m *natsgo.Msg) { _ = m.Respond(m.Data) }); err != nil {
			b.Fatal(err)
		}
		if err := svc.Flush(); err != nil {
			b.Fatal(err)
		}
		return func(ctx context.Context, body []byte) error {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_, err := req.RequestWithContext(ctx, subject, body)
			return err
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reqJS, err := jetstream.New(req)
	if err != nil {
		b.Fatal(err)
	}
	svcJS, err := jetstream.New(svc)
	if err != nil {
		b.Fatal(err)
	}
	st, err := svcJS.CreateStream(ctx, jetstream.StreamConfig{
		Name: cfg.StreamName(subject), Subjects: []string{subject},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
	})
	if err != nil {
		b.Fatal(err)
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "svc", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		b.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		_ = svc.PublishMsg(&natsgo.Msg{Subject: m.Headers().Get("reply-to"), Header: natsgo.Header{"id": m.Headers()["id"]}, Data: m.Data()})
		_ = m.Ack()
	}, jetstream.PullMaxMessages(64))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cc.Stop)
	inbox := req.NewInbox()
	w := newWaiters()
	if _, err := req.Subscribe(inbox, func(m *natsgo.Msg) { w.done(m.Header.Get("id")) }); err != nil {
		b.Fatal(err)
	}
	if err := req.Flush(); err != nil {
		b.Fatal(err)
	}
	var seq atomic.Uint64
	return func(ctx context.Context, body []byte) error {
		id := fmt.Sprint(seq.Add(1))
		ch := w.add(id)
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		m := &natsgo.Msg{Subject: subject, Header: natsgo.Header{"id": {id}, "reply-to": {inbox}}, Data: body}
		if _, err := reqJS.PublishMsg(pctx, m); err != nil {
			w.drop(id)
			return err
		}
		return wait(ctx, ch)
	}
}
