package node

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// serverErrorLog is the log of net/http's server errors. They go out at
// WARN, but for the failed TLS handshakes, which are the client's doing
// (a scanner, a plain-HTTP client on the TLS port, a certificate from
// another CA) and would let anyone on the network fill the log: those are
// DEBUG.
func serverErrorLog(l *slog.Logger) *log.Logger {
	return log.New(serverErrorWriter{l}, "", 0)
}

type serverErrorWriter struct{ log *slog.Logger }

func (w serverErrorWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	level := slog.LevelWarn
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}
