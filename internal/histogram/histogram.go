// Package histogram counts observations in fixed buckets with atomics: a
// recorder cheap enough for the hub's and the stores' hot paths, read at
// any time without stopping them. It knows nothing of Prometheus; the
// daemon turns a Snapshot into whatever it exports.
package histogram

import "sync/atomic"

// Recorder counts observations, whole numbers in the caller's unit
// (nanoseconds, events), in the buckets of its bounds. It is safe for
// concurrent use; Observe costs a scan of the bounds and two atomic
// additions, no lock and no allocation.
type Recorder struct {
	bounds []uint64        // upper bounds, inclusive, increasing
	counts []atomic.Uint64 // len(bounds)+1: the last counts what is past every bound
	sum    atomic.Uint64
}

// New returns a recorder with the given upper bounds, which must increase.
func New(bounds ...uint64) *Recorder {
	for i := 1; i < len(bounds); i++ {
		if bounds[i] <= bounds[i-1] {
			panic("histogram: the bounds do not increase")
		}
	}
	return &Recorder{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe counts v in the first bucket whose bound is v or more.
func (r *Recorder) Observe(v uint64) {
	i := 0
	for i < len(r.bounds) && v > r.bounds[i] {
		i++
	}
	r.counts[i].Add(1)
	r.sum.Add(v)
}

// Snapshot is what a Recorder has counted.
type Snapshot struct {
	// Bounds are the buckets' upper bounds, as given to New.
	Bounds []uint64
	// Counts holds the observations of each bucket, not cumulative: one
	// per bound, then those past the last bound.
	Counts []uint64
	// Count is the number of observations; Sum is their total.
	Count, Sum uint64
}

// Snapshot returns the counts so far. Observations made while it reads
// may be counted in Count and not yet in Sum, or the other way round; the
// buckets and Count always agree.
func (r *Recorder) Snapshot() Snapshot {
	s := Snapshot{Bounds: r.bounds, Counts: make([]uint64, len(r.counts))}
	for i := range r.counts {
		s.Counts[i] = r.counts[i].Load()
		s.Count += s.Counts[i]
	}
	s.Sum = r.sum.Load()
	return s
}

// Scaled returns the bounds and the sum multiplied by scale: in seconds,
// say, from nanoseconds.
func (s Snapshot) Scaled(scale float64) (bounds []float64, sum float64) {
	bounds = make([]float64, len(s.Bounds))
	for i, b := range s.Bounds {
		bounds[i] = float64(b) * scale
	}
	return bounds, float64(s.Sum) * scale
}
