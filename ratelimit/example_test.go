package ratelimit_test

import (
	"context"
	"fmt"
	"time"

	"github.com/syncgate/syncgate/ratelimit"
)

func ExampleMemory() {
	l := ratelimit.NewMemory(ratelimit.MemoryConfig{})
	limit := ratelimit.Limit{Rate: 1, Per: time.Hour, Burst: 2}
	for range 3 {
		d, _ := l.Allow(context.Background(), "alice", limit)
		fmt.Println(d.Allowed, d.Remaining)
	}
	// Output:
	// true 1
	// true 0
	// false 0
}
