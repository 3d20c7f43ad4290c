package pebblestore_test

import (
	"path/filepath"
	"testing"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/hub/hubtest"
	"github.com/herald-sse/herald/store/pebblestore"
)

// A long history: a client resuming from any of its events gets exactly
// the events after it, found by a lookup, not a scan (BenchmarkLookup
// measures a lookup at 10,000 and 1,000,000 events). The history holds a
// million events with hubtest.LongEnv set, else 50,000: past a memtable's
// worth, so that lookups and reads go to a table on disk as well.
func TestResumeInALongHistory(t *testing.T) {
	t.Parallel()
	l := open(t, pebblestore.Config{Size: 2_000_000})
	defer l.Close()
	hubtest.ResumeInHistory(t, l, hubtest.Size(50_000, 1_000_000))
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
