package node_test

import (
	"log/slog"
	"testing"

	"github.com/syncgate/syncgate/correlation/redisstate"
	"go.uber.org/goleak"
)

// Every node test stops its node; no goroutine may outlive Run. go-redis's
// own lines (a refused dial while a test keeps Redis away) go to slog at
// debug, as the syncgate command sends them, not to stderr.
func TestMain(m *testing.M) {
	redisstate.SetLibraryLogger(slog.Default())
	goleak.VerifyTestMain(m)
}
