package floor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// shutdownTimeout bounds how long a stopping server waits for the
// requests in flight.
const shutdownTimeout = 5 * time.Second

// serve runs h on addr until ctx ends, calling listening (if set) with the
// address once it accepts connections, then shuts the server down.
func serve(ctx context.Context, addr string, h http.Handler, listening func(string)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("floor: listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if listening != nil {
		listening(ln.Addr().String())
	}
	select {
	case err := <-served:
		return fmt.Errorf("floor: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("floor: shutdown: %w", err), srv.Close())
	}
	<-served // http.ErrServerClosed
	return err
}

// EchoServer runs a plain net/http echo until ctx ends: each POST body is
// answered 200 with itself and its content type. It is the floor of the
// memory path: HTTP in and out, nothing between.
func EchoServer(ctx context.Context, cfg EchoServerConfig) error {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	return serve(ctx, cfg.Addr, http.HandlerFunc(echoHTTP), cfg.Listening)
}

func echoHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	_, _ = w.Write(body)
}
