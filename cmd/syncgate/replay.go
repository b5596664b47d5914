package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/syncgate/syncgate/replay"
	"github.com/syncgate/syncgate/tap"
)

const replayUsage = `Usage: syncgate replay [flags]

Reads exchanges back from a tap's sink (JSON Lines files, or a postgres
sink's table), keeps those the filters select, and sends their requests
again through a gateway's HTTP API, each with Replay-Of naming the
original. Prints a table of outcomes; --report writes every result.

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
	if to == "" && !dryRun {
		return errors.New("replay: --to the gateway (or --dry-run)")
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
