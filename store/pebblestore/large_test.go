package pebblestore_test

import (
	"path/filepath"
	"testing"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/hub/hubtest"
	"github.com/herald-sse/herald/store/pebblestore"
)

// A history of a million events: a client resuming from any of them gets
// exactly the events after it, found by a lookup, not a scan.
func TestResumeInAMillion(t *testing.T) {
	t.Parallel()
	l := open(t, pebblestore.Config{Size: 2_000_000})
	defer l.Close()
	hubtest.ResumeInHistory(t, l, 1_000_000)
}

func newBenchLog(b *testing.B) hub.Log {
	l, err := pebblestore.Open(pebblestore.Config{Dir: filepath.Join(b.TempDir(), "history"), Size: 2_000_000})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

func BenchmarkLookup(b *testing.B) { hubtest.BenchLookup(b, newBenchLog) }
func BenchmarkResume(b *testing.B) { hubtest.BenchResume(b, newBenchLog) }
