package logcore

import (
	"sync/atomic"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/internal/histogram"
)

var _ hub.CommitReporter = (*Log)(nil)

// commitSizeBounds are the buckets of the commit sizes, in events: powers
// of two up to maxBatch.
var commitSizeBounds = []uint64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, maxBatch}

// commitCounts counts the commits of a Log. Its zero value is ready: the
// recorder is made on the first commit.
type commitCounts struct {
	sizes  atomic.Pointer[histogram.Recorder]
	failed atomic.Uint64
}

// recorder returns the recorder of commit sizes, making it if need be.
func (c *commitCounts) recorder() *histogram.Recorder {
	if r := c.sizes.Load(); r != nil {
		return r
	}
	c.sizes.CompareAndSwap(nil, histogram.New(commitSizeBounds...))
	return c.sizes.Load()
}

// committed counts a commit of n events that failed with err, or not.
func (c *commitCounts) committed(n int, err error) {
	if err != nil {
		c.failed.Add(1)
		return
	}
	c.recorder().Observe(uint64(n))
}

// CommitStats implements hub.CommitReporter: the events of each commit
// (group commit puts the appends that wait together in one), and the
// commits that failed.
func (l *Log) CommitStats() hub.CommitStats {
	s := l.stats.recorder().Snapshot()
	bounds, sum := s.Scaled(1)
	return hub.CommitStats{
		Sizes:  hub.Histogram{Bounds: bounds, Counts: s.Counts, Count: s.Count, Sum: sum},
		Failed: l.stats.failed.Load(),
	}
}
