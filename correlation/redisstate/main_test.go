package redisstate_test

import (
	"log/slog"
	"testing"

	"github.com/syncgate/syncgate/correlation/redisstate"
	"github.com/syncgate/syncgate/internal/redistest"
)

// go-redis's own lines (the refused dials of the outage tests) go to slog
// at debug, as the syncgate command sends them, not to stderr.
func TestMain(m *testing.M) {
	redisstate.SetLibraryLogger(slog.Default())
	redistest.Main(m)
}
