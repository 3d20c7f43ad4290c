package boltstore_test

import (
	"path/filepath"
	"testing"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/hub/hubtest"
	"github.com/herald-sse/herald/store/boltstore"
)

// A long history: a client resuming from any of its events gets exactly
// the events after it, found by a lookup, not a scan (BenchmarkLookup
// measures a lookup at 10,000 and 1,000,000 events). The history holds a
// million events with hubtest.LongEnv set, else 50,000: B+trees of
// thousands of pages, with branch pages above their leaves.
func TestResumeInALongHistory(t *testing.T) {
	t.Parallel()
	l := open(t, boltstore.Config{Size: 2_000_000})
	defer l.Close()
	hubtest.ResumeInHistory(t, l, hubtest.Size(50_000, 1_000_000))
}

func newBenchLog(b *testing.B) hub.Log {
	l, err := boltstore.Open(boltstore.Config{Path: filepath.Join(b.TempDir(), "history.db"), Size: 2_000_000})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

func BenchmarkLookup(b *testing.B) { hubtest.BenchLookup(b, newBenchLog) }
func BenchmarkResume(b *testing.B) { hubtest.BenchResume(b, newBenchLog) }
