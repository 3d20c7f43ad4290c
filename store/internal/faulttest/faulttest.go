// Package faulttest holds what the stores' fault tests share: a log
// handler that records a store's errors and its failed attempts to
// recover, and a check that a history holds every acknowledged event.
package faulttest

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/herald-sse/herald/hub"
)

// LogRecorder is a slog.Handler that keeps a log's messages, and signals
// each failed attempt to recover.
type LogRecorder struct {
	mu       sync.Mutex
	errors   []string      // the messages at error level
	Attempts chan struct{} // a failed attempt to recover, if any since the last receive
}

// NewLogRecorder returns an empty LogRecorder.
func NewLogRecorder() *LogRecorder { return &LogRecorder{Attempts: make(chan struct{}, 1)} }

func (r *LogRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *LogRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *LogRecorder) WithGroup(string) slog.Handler            { return r }

func (r *LogRecorder) Handle(_ context.Context, rec slog.Record) error {
	if strings.Contains(rec.Message, "still cannot store events") {
		select {
		case r.Attempts <- struct{}{}:
		default:
		}
	}
	if rec.Level >= slog.LevelError {
		r.mu.Lock()
		r.errors = append(r.errors, rec.Message)
		r.mu.Unlock()
	}
	return nil
}

// Count returns how many error messages hold s.
func (r *LogRecorder) Count(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.errors {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}

// CheckAcked checks that l holds the acknowledged events in order, the
// events of failed commits (IDs starting with "b") aside.
func CheckAcked(t *testing.T, l hub.Log, acked []string) {
	t.Helper()
	evs, err := l.Read(context.Background(), 1, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for _, e := range evs {
		if i < len(acked) && e.ID == acked[i] {
			i++
		} else if !strings.HasPrefix(e.ID, "b") {
			t.Fatalf("an event that was not published: %s", e.ID)
		}
	}
	if i != len(acked) {
		t.Fatalf("the history holds %d events; %d acknowledged ones of %v in order", len(evs), i, acked)
	}
}

// Errors returns the messages logged at error level so far.
func (r *LogRecorder) Errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errors...)
}
