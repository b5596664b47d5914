package scenario

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
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
	op := k.op()
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
	if err := k.close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if ok.Load() != requests {
		t.Errorf("%d of %d requests answered", ok.Load(), requests)
	}
	if n := k.stray.Load(); n != 0 {
		t.Errorf("%d replies matched no waiting request", n)
	}
	if n := k.mux.Len(); n != 0 {
		t.Errorf("%d requests still waiting for a reply", n)
	}
}
