package gateway_test

import (
	"testing"

	"go.uber.org/goleak"
)

// go-redis retries a failed dial in a goroutine that outlives Close by up
// to a second (the cluster tests dial a dead port on purpose).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}
