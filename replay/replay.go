// Package replay reads exchanges back from a tap's sink (a JSON Lines
// file, a PostgreSQL table), picks those a filter selects, and sends their
// requests again through a gateway's HTTP API, at a given rate: "a
// service was broken from 10:02 to 10:17; send every request that got a
// 5xx or timed out in that window again".
package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncgate/syncgate/tap"
)

// HeaderReplayOf names, on a replayed request, the correlation id of the
// exchange it repeats; the gateway gives the replay a correlation id of
// its own.
const HeaderReplayOf = "Replay-Of"

// Filter selects exchanges; a zero field selects all.
type Filter struct {
	Routes       []string
	Since, Until time.Time // Since <= time < Until
	// Statuses are status classes (5xx, 4xx, 2xx) or exact statuses
	// (504); an exchange matches one of them.
	Statuses []string
	IDs      []string // correlation ids
}

// Match reports whether f selects x.
func (f Filter) Match(x *tap.Exchange) bool {
	switch {
	case len(f.Routes) > 0 && !slices.Contains(f.Routes, x.Route):
		return false
	case !f.Since.IsZero() && x.Time.Before(f.Since):
		return false
	case !f.Until.IsZero() && !x.Time.Before(f.Until):
		return false
	case len(f.IDs) > 0 && !slices.Contains(f.IDs, x.CorrelationID):
		return false
	}
	if len(f.Statuses) == 0 {
		return true
	}
	for _, s := range f.Statuses {
		if statusMatches(s, x.Status) {
			return true
		}
	}
	return false
}

func statusMatches(class string, status int) bool {
	if len(class) == 3 && strings.HasSuffix(class, "xx") && class[0] >= '1' && class[0] <= '5' {
		return status/100 == int(class[0]-'0')
	}
	n, err := strconv.Atoi(class)
	return err == nil && n == status
}

// ValidStatus reports whether s is a status class or status Filter takes.
func ValidStatus(s string) bool {
	if len(s) == 3 && strings.HasSuffix(s, "xx") && s[0] >= '1' && s[0] <= '5' {
		return true
	}
	n, err := strconv.Atoi(s)
	return err == nil && n >= 100 && n <= 599
}

// ReadJSONL calls fn with every exchange of the JSON Lines files (gzipped
// ones too: name.gz) that f selects, file after file, in their order.
func ReadJSONL(ctx context.Context, paths []string, f Filter, fn func(tap.Exchange) error) error {
	for _, p := range paths {
		if err := readFile(ctx, p, f, fn); err != nil {
			return err
		}
	}
	return nil
}

func readFile(ctx context.Context, path string, f Filter, fn func(tap.Exchange) error) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	var r io.Reader = file
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(file)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 64<<20)
	for line := 1; sc.Scan(); line++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var x tap.Exchange
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if f.Match(&x) {
			if err := fn(x); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// ReadPostgres calls fn with every exchange of table (a postgres sink's)
// that f selects, in time order; the time window, routes and ids are
// looked up by the table's indexes.
func ReadPostgres(ctx context.Context, url, table string, f Filter, fn func(tap.Exchange) error) error {
	if table == "" {
		table = "syncgate_exchanges"
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if !f.Since.IsZero() {
		where = append(where, "time >= "+arg(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "time < "+arg(f.Until))
	}
	if len(f.Routes) > 0 {
		where = append(where, "route = ANY("+arg(f.Routes)+")")
	}
	if len(f.IDs) > 0 {
		where = append(where, "correlation_id = ANY("+arg(f.IDs)+")")
	}
	q := "SELECT exchange FROM " + pgx.Identifier(strings.Split(table, ".")).Sanitize()
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := conn.Query(ctx, q+" ORDER BY time, id", args...)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		var x tap.Exchange
		if err := json.Unmarshal(raw, &x); err != nil {
			return fmt.Errorf("replay: a row: %w", err)
		}
		if f.Match(&x) { // the statuses, and anything the query let through
			if err := fn(x); err != nil {
				return err
			}
		}
	}
	return rows.Err()
}

// Config configures Send.
type Config struct {
	// Target is the gateway's base URL (http://gw:8080), or a name for
	// the report when Broker is set.
	Target string
	// Broker, when set, sends the requests straight to the broker instead
	// of through Target (its Run must be consuming the replies).
	Broker *Broker
	Client *http.Client
	// Rate bounds the requests sent per second (default 10).
	Rate float64
	// Concurrency bounds the requests under way (default 8).
	Concurrency int
	// DryRun sends nothing: the report lists what would be sent.
	DryRun bool
	// Header is added to every request (an Authorization the gateway
	// requires, since the tap never keeps one).
	Header http.Header
	// Progress, when set, gets a line per second while sending.
	Progress io.Writer
}

// Result is what became of one exchange.
type Result struct {
	Original string `json:"original_correlation_id"`
	Route    string `json:"route"`
	Method   string `json:"method"`
	Path     string `json:"path"`
	// ID is the replay's own correlation id (X-Correlation-Id).
	ID     string `json:"correlation_id,omitempty"`
	Status int    `json:"status,omitempty"`
	// Skipped says why it was not sent: its body was cut by the tap, or
	// this is a dry run.
	Skipped string `json:"skipped,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Report is a replay's outcome.
type Report struct {
	Started  time.Time      `json:"started"`
	Duration float64        `json:"duration_s"`
	Target   string         `json:"target"`
	DryRun   bool           `json:"dry_run"`
	Counts   map[string]int `json:"counts"` // by status ("202", "503"), "skipped", "error"
	Results  []Result       `json:"results"`
}

// hopByHop are headers a replay does not send as they were: those of the
// connection, those the gateway sets, and the Idempotency-Key, which
// would attach the replay to the original instead of running it again.
var hopByHop = map[string]bool{"Connection": true, "Keep-Alive": true, "Te": true, "Trailer": true, "Transfer-Encoding": true,
	"Upgrade": true, "Content-Length": true, "Host": true, "X-Correlation-Id": true, "Traceparent": true, "Tracestate": true,
	"Idempotency-Key": true}

// Send sends the requests of xs to cfg.Target, at most cfg.Rate a second,
// and reports what became of each, in the order of xs.
func Send(ctx context.Context, cfg Config, xs []tap.Exchange) (*Report, error) {
	if cfg.Target == "" && cfg.Broker == nil {
		return nil, errors.New("replay: no target")
	}
	if cfg.Broker != nil && cfg.Broker.ReplyTo == "" {
		return nil, errNoReplyTo
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 2 * time.Minute}
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 10
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	rep := &Report{Started: time.Now(), Target: cfg.Target, DryRun: cfg.DryRun, Counts: map[string]int{}, Results: make([]Result, len(xs))}
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
	defer tick.Stop()
	sem := make(chan struct{}, cfg.Concurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	lastProgress := time.Now()
	progress := func() {
		if cfg.Progress != nil && time.Since(lastProgress) >= time.Second {
			lastProgress = time.Now()
			fmt.Fprintf(cfg.Progress, "replay: %d/%d  %s\n", done, len(xs), countsText(rep.Counts))
		}
	}
	for i := range xs {
		x := &xs[i]
		r := &rep.Results[i]
		*r = Result{Original: x.CorrelationID, Route: x.Route, Method: x.Request.Method, Path: x.Request.Path}
		switch {
		case x.Request.BodyTruncated:
			r.Skipped = "the tap kept part of its body (taps.max_body)"
		case cfg.DryRun:
			r.Skipped = "dry run"
		}
		if r.Skipped != "" {
			mu.Lock()
			rep.Counts["skipped"]++
			done++
			mu.Unlock()
			continue
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			wg.Wait()
			return rep, ctx.Err()
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if cfg.Broker != nil {
				cfg.Broker.send(ctx, x, cfg.Header, r)
			} else {
				send(ctx, cfg, x, r)
			}
			mu.Lock()
			defer mu.Unlock()
			if r.Error != "" {
				rep.Counts["error"]++
			} else {
				rep.Counts[strconv.Itoa(r.Status)]++
			}
			done++
			progress()
		})
	}
	wg.Wait()
	rep.Duration = time.Since(rep.Started).Seconds()
	return rep, nil
}

func send(ctx context.Context, cfg Config, x *tap.Exchange, r *Result) {
	url := strings.TrimRight(cfg.Target, "/") + x.Request.Path
	if x.Request.Query != "" {
		url += "?" + x.Request.Query
	}
	req, err := http.NewRequestWithContext(ctx, x.Request.Method, url, bytes.NewReader(x.Request.Body))
	if err != nil {
		r.Error = err.Error()
		return
	}
	for k, vs := range x.Request.Header {
		if !hopByHop[http.CanonicalHeaderKey(k)] {
			req.Header[http.CanonicalHeaderKey(k)] = vs
		}
	}
	for k, vs := range cfg.Header {
		req.Header[k] = vs
	}
	req.Header.Set(HeaderReplayOf, x.CorrelationID)
	resp, err := cfg.Client.Do(req)
	if err != nil {
		r.Error = err.Error()
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	r.Status, r.ID = resp.StatusCode, resp.Header.Get("X-Correlation-Id")
}

// Table writes the report's counts as a Markdown table.
func (r *Report) Table(w io.Writer) {
	keys := make([]string, 0, len(r.Counts))
	for k := range r.Counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprintf(w, "| outcome | requests |\n|---|---:|\n")
	for _, k := range keys {
		fmt.Fprintf(w, "| %s | %d |\n", k, r.Counts[k])
	}
	fmt.Fprintf(w, "| total | %d |\n", len(r.Results))
}

func countsText(c map[string]int) string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "×" + strconv.Itoa(c[k])
	}
	return strings.Join(parts, " ")
}
