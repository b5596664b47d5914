package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/syncgate/syncgate/brokers/responder/demo"
	"github.com/syncgate/syncgate/internal/node"
)

// payload is what every echo request sends: a small JSON document.
var payload = []byte(`{"order":42,"amount":"12.50","currency":"EUR"}`)

// server is something a scenario started; stop is idempotent.
type server struct {
	base string
	node *node.Node
	stop func() error
}

// startDirect serves directEcho on 127.0.0.1 with the gateway's server
// settings that matter for load (keep-alive).
func startDirect() (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: demo.EchoHTTP(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	stopped := false
	return &server{base: "http://" + ln.Addr().String(), stop: func() error {
		if stopped {
			return nil
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := srv.Shutdown(ctx)
		if serr := <-done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
		return err
	}}, nil
}

// nodeConfig is the embedded demo configuration on a free loopback port,
// quiet, with the routes the scenarios use.
func nodeConfig(kind string) node.Config {
	cfg := node.Embedded()
	cfg.Addr = "127.0.0.1:0"
	cfg.Node = "loadtest"
	cfg.Log.Level = "error"
	cfg.Broker.Kind = kind
	cfg.Shutdown.DrainTimeout = 5 * time.Second
	cfg.Shutdown.ReadinessDelay = time.Millisecond // nothing probes it
	return cfg
}

// startNode runs a gateway node in this process until stop.
func startNode(cfg node.Config) (*server, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := node.New(cfg, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	stopped, runErr := false, error(nil)
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("scenario: node did not stop within 30s")
			}
		}
		return runErr
	}
	select {
	case <-n.Ready():
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("scenario: node stopped before ready: %w", err)
	case <-time.After(30 * time.Second):
		_ = stop()
		return nil, errors.New("scenario: node not ready within 30s")
	}
	return &server{base: "http://" + n.Addr(), node: n, stop: stop}, nil
}
