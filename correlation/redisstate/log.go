package redisstate

import (
	"context"
	"fmt"
	"log/slog"

	goredis "github.com/redis/go-redis/v9"
)

// SetLibraryLogger sends go-redis's own log lines (a failed dial, a pool
// event), which it would otherwise print to stderr, to log at Debug under
// component go-redis: the errors that matter reach the caller as
// ErrUnavailable and are logged there, once. go-redis keeps one logger per
// process, so main calls this once (and the TestMain of tests that use
// Redis, so that a refused dial does not spam their output).
func SetLibraryLogger(log *slog.Logger) {
	goredis.SetLogger(libraryLogger{log.With(slog.String("component", "go-redis"))})
}

type libraryLogger struct{ log *slog.Logger }

func (l libraryLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}
