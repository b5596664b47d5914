package nats_test

import (
	"log/slog"
	"os"
)

// NATS_DEBUG=1 logs the package's debug lines (consume errors, probes,
// reconnections) while debugging a test.
func init() {
	if os.Getenv("NATS_DEBUG") != "" {
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))
	}
}
