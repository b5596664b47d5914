package rabbitmq_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncgate/syncgate/brokers"
)

// A reply inbox handled by several workers keeps the order of the
// messages of one correlation id (a service's progress messages, then its
// reply), while different ids are handled side by side.
func TestInboxKeepsOrderPerCorrelationID(t *testing.T) {
	cfg := testConfig(t)
	c := dial(t, cfg)
	inbox := unique("syncgate.reply")
	cleanupQueue(t, inbox)
	const ids, each = 3, 60
	var mu sync.Mutex
	got := make(map[string][]int)
	done := make(chan struct{})
	total := 0
	subscribe(t, c, inbox, func(_ context.Context, m brokers.Message) error {
		time.Sleep(time.Duration(rand.N(2000)) * time.Microsecond) // handlers overtake each other
		n, _ := strconv.Atoi(m.Headers["seq"])
		mu.Lock()
		defer mu.Unlock()
		id := m.Headers["correlation-id"]
		got[id] = append(got[id], n)
		if total++; total == ids*each {
			close(done)
		}
		return nil
	}, brokers.AsInbox(), brokers.WithConcurrency(8))
	keys := make([]string, ids)
	for i := range keys {
		keys[i] = uuid.NewString()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for n := range each {
		for _, id := range keys {
			m := brokers.Message{Key: id, Headers: map[string]string{"correlation-id": id, "seq": strconv.Itoa(n)}}
			if err := c.Publish(ctx, inbox, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("handled %d of %d messages", total, ids*each)
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
}
