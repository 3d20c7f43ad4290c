// Package logging builds the daemon's logger: the handler that
// -log-format names, at the level of -log-level, writing every record,
// the banner included, in one format. Libraries take the *slog.Logger it
// returns; none has a logger of its own.
package logging

import (
	"io"
	"log/slog"
)

// New returns a logger writing to w in format, "json" or else text, that
// keeps the records at level or above ("debug", "info", "warn", "error";
// anything else is info). Durations are written as text, "1.5s", in both
// formats (ReplaceAttr).
func New(w io.Writer, format, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: l, ReplaceAttr: ReplaceAttr}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// ReplaceAttr writes a time.Duration as its String, "1.5s", where slog's
// JSON handler would write nanoseconds: a person reads the one, and a
// program parses it with time.ParseDuration. It is a
// slog.HandlerOptions.ReplaceAttr.
func ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}
