package scenario

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/syncgate/syncgate/brokers/rabbitmq"
	"github.com/syncgate/syncgate/brokers/rabbitmq/rabbitmqtest"
	"github.com/syncgate/syncgate/internal/testenv"
	"github.com/syncgate/syncgate/loadtest"
)

// The raw kafka-go loops on kfake, without and with linger: 300 requests
// from 16 callers, each answered with its own body (the op checks it) and
// no reply left over.
func TestRawKafkaLoop(t *testing.T) {
	for _, batch := range []int{1, 100} {
		t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) { testRawKafkaLoop(t, batch) })
	}
}

func testRawKafkaLoop(t *testing.T, batch int) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "req", "rep"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	k := newRawKafka(c.ListenAddrs(), "req", "rep", batch, time.Millisecond)
	driveRawLoop(t, k.op())
	if err := k.close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if n := k.stray.Load(); n != 0 {
		t.Errorf("%d replies matched no waiting request", n)
	}
	if n := k.mux.Len(); n != 0 {
		t.Errorf("%d requests still waiting for a reply", n)
	}
}

// The raw amqp091-go loops at each rawLevel on the RabbitMQ server of the
// rabbitmq scenario (testenv.RequireRabbitMQ): 300 requests from 16 callers,
// each answered with its own body, and nothing left waiting.
func TestRawRabbitLoop(t *testing.T) {
	rabbitmqtest.Shared(t) // no outage test of brokers/rabbitmq stops it meanwhile
	testenv.RequireRabbitMQ(t)
	for _, tc := range []struct {
		name  string
		level rawLevel
	}{{"fast", rawFast}, {"confirms", rawConfirms}, {"durable-replies", rawDurableReplies}} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := newRawRabbit(rabbitmq.DefaultURL, tc.level)
			if err != nil {
				t.Fatal(err)
			}
			driveRawLoop(t, r.op())
			if err := r.close(); err != nil {
				t.Errorf("close: %v", err)
			}
			if n := r.mux.Len(); n != 0 {
				t.Errorf("%d requests still waiting for a reply", n)
			}
		})
	}
}

// driveRawLoop runs 300 requests through op from 16 callers and checks
// that each was answered.
func driveRawLoop(t *testing.T, op loadtest.Op) {
	t.Helper()
	const requests, callers = 300, 16
	var next, ok atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			for next.Add(1) <= requests {
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				status, err := op(ctx)
				cancel()
				if err != nil || status != 200 {
					errs <- err
					return
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("request failed: %v", err)
	}
	if ok.Load() != requests {
		t.Errorf("%d of %d requests answered", ok.Load(), requests)
	}
}
