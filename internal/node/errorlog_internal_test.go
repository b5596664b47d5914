package node

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// A failed TLS handshake is the client's doing and logs at DEBUG; any
// other server error stays a WARN.
func TestServerErrorLogLevels(t *testing.T) {
	var buf bytes.Buffer
	l := serverErrorLog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Printf("http: TLS handshake error from 127.0.0.1:5555: remote error: tls: unknown certificate authority")
	l.Printf("http: Accept error: too many open files; retrying in 5ms")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], "level=DEBUG") || !strings.Contains(lines[0], "TLS handshake error") {
		t.Errorf("handshake line: %s", lines[0])
	}
	if !strings.Contains(lines[1], "level=WARN") || !strings.Contains(lines[1], `msg="http: Accept error`) {
		t.Errorf("accept line: %s", lines[1])
	}
}
