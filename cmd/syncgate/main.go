// Command syncgate runs a syncgate gateway node.
//
// With no configuration it starts the embedded default: the gateway, an
// in-memory broker and the demo service in one process on 127.0.0.1:8080,
// so that curl works at once. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/syncgate/syncgate/correlation/redisstate"
	"github.com/syncgate/syncgate/internal/node"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "syncgate:", err)
			os.Exit(1)
		}
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if isVersionRequest(args) {
		return printVersion(stdout)
	}
	if len(args) > 0 && args[0] == "replay" {
		return runReplay(ctx, args[1:], stdout, stderr)
	}
	cfg, err := node.Load(args, getenv, stdout) // --help goes to stdout
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal starts a graceful stop; restoring the default
	// handling then makes a second one end the process at once.
	context.AfterFunc(ctx, stop)
	// SIGHUP reloads the TLS files (node.Reload) instead of ending the
	// process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	if cfg.Cluster.Enabled {
		redisstate.SetLibraryLogger(log)
	}
	n, err := node.New(cfg, log)
	if err != nil {
		return err
	}
	version := readBuildVersion()
	if err := n.Metrics().Register(buildInfoGauge(version)); err != nil {
		return fmt.Errorf("registering syncgate_build_info: %w", err)
	}
	log.Info("starting", slog.String("version", version.Version), slog.String("revision", version.Revision),
		slog.String("addr", n.Addr()), slog.String("node", cfg.Node),
		slog.String("broker", cfg.Broker.Kind), slog.String("reply_to", cfg.ReplyTo),
		slog.Bool("demo", cfg.Demo.Enabled), slog.Int("routes", len(cfg.Routes)), slog.String("tracing", tracingMode(n)))
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	ready := n.Ready()
	for {
		select {
		case <-ready:
			ready = nil
			log.Info("ready", slog.String("addr", n.Addr()), slog.Bool("tls", cfg.TLS.Enabled()))
			if cfg.Demo.Enabled {
				printTryIt(stdout, baseURL(cfg, n.Addr()), cfg.Broker.Kind)
			}
		case <-hup:
			log.Info("SIGHUP: reloading")
			_ = n.Reload() // logs the outcome; a failure keeps the old certificate
		case err := <-done:
			return err
		}
	}
}

// tracingMode says where spans go, for the starting line.
func tracingMode(n *node.Node) string {
	if t := n.Tracing(); t.Recording() {
		return t.Exporter
	}
	return "off (trace context propagated, nothing exported)"
}

func baseURL(cfg node.Config, addr string) string {
	if cfg.TLS.Enabled() {
		return "https://" + addr
	}
	return "http://" + addr
}

func printTryIt(w io.Writer, base, broker string) {
	fmt.Fprintf(w, `
syncgate is up on %[1]s with the %[2]s broker and the demo service. Try:

  curl -i %[1]s/demo/echo -H 'Content-Type: application/json' -d '{"hello":"world"}'
  curl -i %[1]s/demo/sleep?ms=3000 -d 'slow'              # 202 after 2 s; follow Location
  curl -i %[1]s/demo/echo -H 'Prefer: respond-async' -d x # 202 at once
  curl -i %[1]s/v1/requests/<id>                          # poll the Location
  curl -i %[1]s/demo/sleep-sync?ms=3000 -d 'late'         # sync route: 504 after 2 s
  curl -i %[1]s/demo/gather?ms=300 -d '{"a":1}' -H 'Content-Type: application/json'  # scatter-gather: both services, one answer

Stop with Ctrl-C: /readyz turns 503 for the readiness delay, then in-flight
requests get the drain timeout to finish. A second Ctrl-C stops at once.

`, base, broker)
}

func newLogger(c node.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(c.Level))) // validated
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
