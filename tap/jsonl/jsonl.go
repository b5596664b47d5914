// Package jsonl is a tap sink that appends exchanges to a JSON Lines file,
// one JSON object per line, rotated by size and by time with timberjack
// (a maintained fork of lumberjack, whose Close stops its goroutines).
package jsonl

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/DeRuina/timberjack"

	"github.com/syncgate/syncgate/tap"
)

// Config configures a Sink.
type Config struct {
	// Path is the file written; rotated files go next to it, named with
	// their rotation time and cause (exchanges-2026-12-05T14-30-00.000-size.jsonl).
	Path string
	// MaxSizeMB rotates the file once it would grow past this many
	// megabytes (default 100).
	MaxSizeMB int
	// RotateEvery also rotates once this long has passed since the last
	// rotation, at the next write (0: by size only).
	RotateEvery time.Duration
	// MaxBackups and MaxAgeDays bound the rotated files kept (0: all).
	MaxBackups, MaxAgeDays int
	// Compress gzips rotated files.
	Compress bool
}

// Sink writes exchanges to a rotated JSON Lines file.
type Sink struct {
	cfg Config
	f   *timberjack.Logger
	buf []byte
}

var _ tap.Sink = (*Sink)(nil)

// New returns a sink writing to cfg.Path (created on the first write).
func New(cfg Config) (*Sink, error) {
	if cfg.Path == "" {
		return nil, errors.New("jsonl: no path")
	}
	if cfg.MaxSizeMB <= 0 {
		cfg.MaxSizeMB = 100
	}
	compression := "none"
	if cfg.Compress {
		compression = "gzip"
	}
	return &Sink{cfg: cfg, f: &timberjack.Logger{
		Filename: cfg.Path, MaxSize: cfg.MaxSizeMB, MaxBackups: cfg.MaxBackups, MaxAge: cfg.MaxAgeDays,
		Compression: compression, RotationInterval: cfg.RotateEvery, FileMode: 0o640,
	}}, nil
}

// Write appends batch, one line per exchange, in one write.
func (s *Sink) Write(_ context.Context, batch []tap.Exchange) error {
	b := s.buf[:0]
	for i := range batch {
		b = tap.AppendJSON(b, &batch[i])
		b = append(b, '\n')
	}
	if _, err := s.f.Write(b); err != nil {
		return fmt.Errorf("jsonl: write %s: %w", s.cfg.Path, err)
	}
	if cap(b) <= 1<<20 {
		s.buf = b // a burst's room is not kept
	}
	return nil
}

// Close closes the file.
func (s *Sink) Close() error { return s.f.Close() }
