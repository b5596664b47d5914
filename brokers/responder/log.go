package responder

import (
	"context"
	"log/slog"
	"runtime"
	"time"
)

// requestLog logs about one request, each line with its correlation id.
// It adds the id when a line is written: slog.Logger.With would format it
// (and copy the handler) for every request, most of which are never
// logged about.
type requestLog struct {
	log *slog.Logger
	id  string
}

func (l requestLog) Info(ctx context.Context, msg string, attrs ...slog.Attr) {
	l.emit(ctx, slog.LevelInfo, msg, attrs)
}

func (l requestLog) Warn(ctx context.Context, msg string, attrs ...slog.Attr) {
	l.emit(ctx, slog.LevelWarn, msg, attrs)
}

func (l requestLog) Error(ctx context.Context, msg string, attrs ...slog.Attr) {
	l.emit(ctx, slog.LevelError, msg, attrs)
}

// emit writes the line as slog.Logger.LogAttrs would, the caller of Info,
// Warn or Error as its source.
func (l requestLog) emit(ctx context.Context, level slog.Level, msg string, attrs []slog.Attr) {
	if !l.log.Enabled(ctx, level) {
		return
	}
	var pcs [1]uintptr
	runtime.Callers(3, pcs[:]) // Callers, emit, Info/Warn/Error
	r := slog.NewRecord(time.Now(), level, msg, pcs[0])
	r.AddAttrs(slog.String("correlation_id", l.id))
	r.AddAttrs(attrs...)
	_ = l.log.Handler().Handle(ctx, r)
}
