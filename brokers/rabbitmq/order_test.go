package rabbitmq_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
)

// A reply inbox handled by several workers keeps the order of the
// messages of one correlation id (a service's progress messages, then its
// reply), while different ids are handled side by side: whether the id
// travels as the AMQP property (this package's publisher), only as the
// correlation-id header (a foreign publisher), or the inbox is RabbitMQ's
// direct reply-to.
func TestInboxKeepsOrderPerCorrelationID(t *testing.T) {
	const ids, each = 8, 30
	keys := make([]string, ids)
	for i := range keys {
		keys[i] = uuid.NewString()
	}
	for _, mode := range []string{"property", "header only", "direct reply-to"} {
		t.Run(mode, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.DirectReplyTo = mode == "direct reply-to"
			c := dial(t, cfg)
			inbox := unique("syncgate.reply")
			cleanupQueue(t, inbox)
			var mu sync.Mutex
			got := make(map[string][]int)
			done := make(chan struct{})
			total := 0
			var inFlight, most atomic.Int32
			subscribe(t, c, inbox, func(_ context.Context, m brokers.Message) error {
				now := inFlight.Add(1)
				defer inFlight.Add(-1)
				for old := most.Load(); now > old && !most.CompareAndSwap(old, now); old = most.Load() {
				}
				time.Sleep(time.Duration(rand.N(2000)) * time.Microsecond) // handlers overtake each other
				n, _ := strconv.Atoi(m.Headers["seq"])
				mu.Lock()
				defer mu.Unlock()
				id := m.Headers[envelope.CorrelationID]
				got[id] = append(got[id], n)
				if total++; total == ids*each {
					close(done)
				}
				return nil
			}, brokers.AsInbox(), brokers.WithConcurrency(8))
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			switch mode {
			case "property":
				for n := range each {
					for _, id := range keys {
						m := brokers.Message{Key: id, Headers: map[string]string{envelope.CorrelationID: id, "seq": strconv.Itoa(n)}}
						if err := c.Publish(ctx, inbox, m); err != nil {
							t.Fatal(err)
						}
					}
				}
			case "header only":
				err := newAdmin(t).do(func(ch *amqp.Channel) error {
					for n := range each {
						for _, id := range keys {
							if err := ch.PublishWithContext(ctx, "", inbox, false, false, amqp.Publishing{
								Headers: amqp.Table{envelope.CorrelationID: id, "seq": int32(n)},
							}); err != nil {
								return err
							}
						}
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			case "direct reply-to":
				// A service answers each request with its messages in
				// order, to the address the broker rewrote.
				svc := dial(t, testConfig(t))
				work := unique("sgtest.work")
				cleanupQueue(t, work)
				subscribe(t, svc, work, func(ctx context.Context, m brokers.Message) error {
					req, err := envelope.DecodeRequest(m)
					if err != nil {
						return err
					}
					for n := range each {
						m := brokers.Message{Headers: map[string]string{envelope.CorrelationID: req.CorrelationID, "seq": strconv.Itoa(n)}}
						if err := svc.Publish(ctx, req.ReplyTo, m); err != nil {
							return err
						}
					}
					return nil
				})
				for _, id := range keys {
					m := envelope.Request{CorrelationID: id, ReplyTo: inbox, Deadline: time.Now().Add(time.Minute)}.Message()
					if err := c.Publish(ctx, work, m); err != nil {
						t.Fatal(err)
					}
				}
			}
			select {
			case <-done:
			case <-ctx.Done():
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("handled %d of %d messages", total, ids*each)
			}
			if most.Load() < 2 {
				t.Errorf("at most %d message handled at a time: the ids were not spread over the workers", most.Load())
			}
			mu.Lock()
			defer mu.Unlock()
			for id, seqs := range got {
				for i, n := range seqs {
					if n != i {
						t.Fatalf("correlation id %s: handled in order %v", id, seqs)
					}
				}
			}
		})
	}
}
