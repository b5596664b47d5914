// Package pgsink is a tap sink that stores each exchange as a row of a
// PostgreSQL table (pgx), indexed for lookup by correlation id, by route,
// by status and by time. The sink creates and migrates its table.
package pgsink

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncgate/syncgate/tap"
)

// Config configures a Sink.
type Config struct {
	// URL is the database (postgres://user@host:5432/db?sslmode=...).
	URL string
	// Table is the table's name (default syncgate_exchanges); a schema
	// may prefix it (audit.exchanges).
	Table string
}

// Sink writes exchanges to a table, one COPY per batch.
type Sink struct {
	pool     *pgxpool.Pool
	table    pgx.Identifier
	migrated bool // by the sink's one writer (tap.Sink.Write is never concurrent)
}

var _ tap.Sink = (*Sink)(nil)

var tableName = regexp.MustCompile(`^([a-z_][a-z0-9_]*\.)?[a-z_][a-z0-9_]*$`)

// columns are the table's, in COPY order.
var columns = []string{"time", "node", "route", "correlation_id", "request_id", "principal", "method", "path",
	"status", "outcome", "duration_ms", "broker_ms", "exchange"}

// migrations bring the table from version i to i+1; %[1]s is the table,
// %[2]s its name without schema, for index names.
var migrations = []string{
	`CREATE TABLE IF NOT EXISTS %[1]s (
		id             bigserial PRIMARY KEY,
		time           timestamptz NOT NULL,
		node           text NOT NULL,
		route          text NOT NULL,
		correlation_id text NOT NULL,
		request_id     text,
		principal      text,
		method         text NOT NULL,
		path           text NOT NULL,
		status         integer NOT NULL,
		outcome        text NOT NULL,
		duration_ms    double precision NOT NULL,
		broker_ms      double precision,
		exchange       jsonb NOT NULL
	);
	CREATE INDEX IF NOT EXISTS %[2]s_correlation_id ON %[1]s (correlation_id);
	CREATE INDEX IF NOT EXISTS %[2]s_route_time ON %[1]s (route, time);
	CREATE INDEX IF NOT EXISTS %[2]s_status_time ON %[1]s (status, time);
	CREATE INDEX IF NOT EXISTS %[2]s_time ON %[1]s (time);`,
}

// New returns a sink on the database at cfg.URL. It connects at its first
// write, which creates or migrates the table first (any number of nodes
// may do so at once: the migration holds an advisory lock): a database
// that is down does not stop a node from starting, its batches fail and
// are counted until it is back.
func New(cfg Config) (*Sink, error) {
	if cfg.Table == "" {
		cfg.Table = "syncgate_exchanges"
	}
	if !tableName.MatchString(cfg.Table) {
		return nil, fmt.Errorf("pgsink: table %q: want a lower-case name, optionally schema.name", cfg.Table)
	}
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("pgsink: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pcfg) // connects lazily
	if err != nil {
		return nil, fmt.Errorf("pgsink: %w", err)
	}
	return &Sink{pool: pool, table: identifier(cfg.Table)}, nil
}

func identifier(name string) pgx.Identifier {
	for i := range len(name) {
		if name[i] == '.' {
			return pgx.Identifier{name[:i], name[i+1:]}
		}
	}
	return pgx.Identifier{name}
}

// migrate applies the migrations the table's version lacks, in one
// transaction under an advisory lock, recording the version in
// syncgate_schema.
func (s *Sink) migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgsink: migrate: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	name := s.table.Sanitize()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('syncgate_schema'))`); err != nil {
		return fmt.Errorf("pgsink: migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS syncgate_schema (name text PRIMARY KEY, version integer NOT NULL)`); err != nil {
		return fmt.Errorf("pgsink: migrate: %w", err)
	}
	var version int
	err = tx.QueryRow(ctx, `SELECT version FROM syncgate_schema WHERE name = $1`, name).Scan(&version)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("pgsink: migrate: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("pgsink: table %s is at schema version %d, newer than this syncgate knows (%d)", name, version, len(migrations))
	}
	short := s.table[len(s.table)-1]
	for v := version; v < len(migrations); v++ {
		if _, err := tx.Exec(ctx, fmt.Sprintf(migrations[v], name, short)); err != nil {
			return fmt.Errorf("pgsink: migrate %s to version %d: %w", name, v+1, err)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO syncgate_schema (name, version) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version`, name, len(migrations)); err != nil {
		return fmt.Errorf("pgsink: migrate: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgsink: migrate: %w", err)
	}
	return nil
}

// Write stores batch with one COPY (after creating or migrating the
// table, the first time).
func (s *Sink) Write(ctx context.Context, batch []tap.Exchange) error {
	if !s.migrated {
		if err := s.migrate(ctx); err != nil {
			return err
		}
		s.migrated = true
	}
	var buf []byte
	_, err := s.pool.CopyFrom(ctx, s.table, columns, pgx.CopyFromSlice(len(batch), func(i int) ([]any, error) {
		x := &batch[i]
		buf = jsonbSafe(tap.AppendJSON(buf[:0], x))
		var broker any
		if x.BrokerMS != 0 {
			broker = x.BrokerMS
		}
		return []any{x.Time, text(x.Node), text(x.Route), text(x.CorrelationID), nullable(x.RequestID), nullable(x.Principal),
			text(x.Request.Method), text(x.Request.Path), x.Status, text(x.Outcome), x.DurationMS, broker, string(buf)}, nil
	}))
	if err != nil {
		return fmt.Errorf("pgsink: copy to %s: %w", s.table.Sanitize(), err)
	}
	return nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return text(s)
}

// text makes s fit a text column: PostgreSQL refuses NUL and invalid
// UTF-8, which a client's header or a principal's claim may hold, and one
// refused row fails the whole batch. NUL goes; invalid bytes become U+FFFD,
// as in the JSON.
func text(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
}

// jsonbSafe replaces the escape \u0000, which jsonb refuses, with \ufffd
// in b, JSON from AppendJSON (valid UTF-8 already), in place.
func jsonbSafe(b []byte) []byte {
	for i := 0; i+1 < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		// An escape: \uXXXX or a pair such as \\, which must be stepped
		// over as one so that its second backslash starts nothing.
		if b[i+1] == 'u' && i+6 <= len(b) && string(b[i+2:i+6]) == "0000" {
			copy(b[i+2:i+6], "fffd")
		}
		i++
	}
	return b
}

// Close closes the connections.
func (s *Sink) Close() error {
	s.pool.Close()
	return nil
}
