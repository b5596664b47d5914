package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/replay"
	"github.com/syncgate/syncgate/tap"
)

const replayUsage = `Usage: syncgate replay [flags]

Reads exchanges back from a tap's sink (JSON Lines files, or a postgres
sink's table), keeps those the filters select, and sends their requests
again through a gateway's HTTP API (--to), or straight to the broker of
a gateway's configuration (--to-broker --config), each with Replay-Of
naming the original. Prints a table of outcomes; --report writes every
result.

Example: a service was broken from 10:02 to 10:17; send again every
request of route orders that got a 5xx (504s included) in that window:

  syncgate replay --from '/var/log/syncgate/exchanges*.jsonl*' --route orders \
    --since 2026-12-05T10:02:00Z --until 2026-12-05T10:17:00Z --status 5xx \
    --to http://gw:8080 --rate 20 --dry-run

Flags:
`

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

// runReplay is the replay subcommand.
func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), replayUsage); fs.PrintDefaults() }
	var (
		from, routes, statuses, ids, headers listFlag
		pgURL, table, since, until, to       string
		configPath                           string
		toBroker                             bool
		reportPath                           string
		rate                                 float64
		concurrency                          int
		dryRun, quiet                        bool
	)
	fs.Var(&from, "from", "JSON Lines files of a jsonl sink (globs; .gz read too; repeatable)")
	fs.StringVar(&pgURL, "from-postgres", "", "the database of a postgres sink (postgres://...; PGPASSWORD is read)")
	fs.StringVar(&table, "table", "syncgate_exchanges", "the postgres sink's table")
	fs.Var(&routes, "route", "only these routes (comma list)")
	fs.StringVar(&since, "since", "", "only exchanges at or after this time (RFC 3339)")
	fs.StringVar(&until, "until", "", "only exchanges before this time (RFC 3339)")
	fs.Var(&statuses, "status", "only these statuses: classes (5xx) or codes (504) (comma list)")
	fs.Var(&ids, "id", "only these correlation ids (comma list)")
	fs.StringVar(&to, "to", "", "the gateway to send to (http://gw:8080)")
	fs.BoolVar(&toBroker, "to-broker", false, "send straight to the broker of --config's gateway, as it would publish, and wait for the replies")
	fs.StringVar(&configPath, "config", "", "with --to-broker: the gateway's configuration file (its broker and routes)")
	fs.Float64Var(&rate, "rate", 10, "requests per second at most")
	fs.IntVar(&concurrency, "concurrency", 8, "requests under way at most")
	fs.BoolVar(&dryRun, "dry-run", false, "send nothing: list what would be sent")
	fs.Var(&headers, "header", `a header added to every request ("Authorization: Bearer ...": a tap never keeps one; repeatable)`)
	fs.StringVar(&reportPath, "report", "", "write the report, every result included, as JSON to this file")
	fs.BoolVar(&quiet, "quiet", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var f replay.Filter
	f.Routes, f.IDs, f.Statuses = routes, ids, statuses
	for _, s := range statuses {
		if !replay.ValidStatus(s) {
			return fmt.Errorf("replay: --status %q: want a class (5xx) or a status (504)", s)
		}
	}
	var err error
	if f.Since, err = parseTime("since", since); err != nil {
		return err
	}
	if f.Until, err = parseTime("until", until); err != nil {
		return err
	}
	if (len(from) == 0) == (pgURL == "") {
		return errors.New("replay: give --from (JSONL files) or --from-postgres, one of them")
	}
	switch {
	case toBroker && to != "":
		return errors.New("replay: --to or --to-broker, not both")
	case toBroker && configPath == "":
		return errors.New("replay: --to-broker needs --config, the gateway's configuration file")
	case to == "" && !toBroker && !dryRun:
		return errors.New("replay: --to the gateway, or --to-broker (or --dry-run)")
	}
	h := http.Header{}
	for _, line := range headers {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return fmt.Errorf("replay: --header %q: want Name: value", line)
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var xs []tap.Exchange
	collect := func(x tap.Exchange) error { xs = append(xs, x); return nil }
	if pgURL != "" {
		err = replay.ReadPostgres(ctx, pgURL, table, f, collect)
	} else {
		var paths []string
		for _, pattern := range from {
			m, gerr := filepath.Glob(pattern)
			if gerr != nil {
				return fmt.Errorf("replay: --from %q: %w", pattern, gerr)
			}
			if len(m) == 0 {
				return fmt.Errorf("replay: --from %q: no such file", pattern)
			}
			paths = append(paths, m...)
		}
		err = replay.ReadJSONL(ctx, paths, f, collect)
	}
	if err != nil {
		return err
	}
	cfg := replay.Config{Target: to, Rate: rate, Concurrency: concurrency, DryRun: dryRun, Header: h}
	if toBroker && !dryRun {
		br, stopBroker, err := replayBroker(ctx, configPath, stderr)
		if err != nil {
			return err
		}
		defer stopBroker()
		cfg.Broker, cfg.Target = br, "broker ("+br.ReplyTo+")"
	}
	if !quiet {
		cfg.Progress = stderr
		fmt.Fprintf(stderr, "replay: %d exchanges selected\n", len(xs))
	}
	if cfg.Target == "" {
		cfg.Target = "(dry run)"
	}
	rep, err := replay.Send(ctx, cfg, xs)
	if rep != nil {
		rep.Table(stdout)
		if dryRun {
			for _, r := range rep.Results {
				fmt.Fprintf(stdout, "%s %s %s (%s)\n", r.Original, r.Method, r.Path, r.Route)
			}
		}
		if reportPath != "" {
			b, jerr := json.MarshalIndent(rep, "", "  ")
			if jerr == nil {
				jerr = os.WriteFile(reportPath, append(b, '\n'), 0o644)
			}
			if jerr != nil {
				return fmt.Errorf("replay: --report: %w", jerr)
			}
		}
	}
	return err
}

func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("replay: --%s %q: want an RFC 3339 time (2026-12-05T10:02:00Z)", name, v)
	}
	return t, nil
}

// replayBroker connects to the broker of the gateway configuration at
// path and consumes a reply inbox of its own (syncgate.replay.<random>;
// on Kafka a topic, which stays behind), until stop.
func replayBroker(ctx context.Context, path string, stderr io.Writer) (*replay.Broker, func(), error) {
	gc, err := node.LoadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("replay: --config: %w", err)
	}
	gc.SetDefaults()
	if err := gc.Validate(); err != nil {
		return nil, nil, fmt.Errorf("replay: --config %s: %w", path, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := node.NewBroker(gc.Broker, log)
	if err != nil {
		return nil, nil, fmt.Errorf("replay: broker: %w", err)
	}
	br := &replay.Broker{Publisher: b, Subscriber: b, Routes: gc.ReplayRoutes(), ReplyTo: "syncgate.replay." + correlation.NewID()}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	ready := make(chan struct{})
	var once sync.Once
	go func() { done <- br.Run(runCtx, func() { once.Do(func() { close(ready) }) }) }()
	stop := func() {
		cancel()
		<-done
		_ = b.Close()
	}
	select {
	case <-ready:
		return br, stop, nil
	case err := <-done:
		cancel()
		_ = b.Close()
		return nil, nil, fmt.Errorf("replay: %w", err)
	case <-time.After(30 * time.Second):
		stop()
		return nil, nil, fmt.Errorf("replay: the reply inbox %s was not consumed within 30s: is the broker (%s) up?", br.ReplyTo, gc.Broker.Kind)
	case <-ctx.Done():
		stop()
		return nil, nil, ctx.Err()
	}
}
