// Package bench is herald's load generator, behind "herald bench": it
// drives any hub that speaks the Mercure protocol, measures what clients
// see (rates, latencies, lost, duplicated or reordered events) and what
// the hub spends (CPU, memory, read from /proc), and reports it.
package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram records durations in log-linear buckets: 64 per power of two,
// so that a percentile is within 1.6 % of the true value, from a
// nanosecond to hours, in a fixed 30 KiB. It is safe for concurrent use.
type Histogram struct {
	counts [64 * 64]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Int64
}

const subBits = 6 // 64 sub-buckets per power of two

func bucketOf(v int64) int {
	if v < 1<<subBits {
		return int(max(v, 0))
	}
	exp := bits.Len64(uint64(v)) - 1 // v in [2^exp, 2^(exp+1))
	sub := int(uint64(v)>>(exp-subBits)) & (1<<subBits - 1)
	return (exp-subBits+1)<<subBits + sub
}

// lowOf returns the smallest value of a bucket.
func lowOf(b int) int64 {
	if b < 1<<subBits {
		return int64(b)
	}
	exp := b>>subBits + subBits - 1
	sub := b & (1<<subBits - 1)
	return int64(1)<<exp + int64(sub)<<(exp-subBits)
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	h.counts[min(bucketOf(v), len(h.counts)-1)].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count returns the number of durations recorded.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Percentile returns the duration under which the fraction p (0 to 1) of
// the recorded durations fall: the middle of its bucket.
func (h *Histogram) Percentile(p float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p * float64(n)))
	rank = max(rank, 1)
	var seen uint64
	for b := range h.counts {
		seen += h.counts[b].Load()
		if seen >= rank {
			lo, hi := lowOf(b), lowOf(b+1)
			return min(time.Duration((lo+hi)/2), h.Max())
		}
	}
	return h.Max()
}

// Max returns the longest duration recorded.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Summary is a histogram's usual percentiles, in milliseconds.
type Summary struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// Summary returns the histogram's percentiles.
func (h *Histogram) Summary() Summary {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return Summary{
		Count: h.Count(),
		P50:   ms(h.Percentile(0.50)),
		P90:   ms(h.Percentile(0.90)),
		P99:   ms(h.Percentile(0.99)),
		P999:  ms(h.Percentile(0.999)),
		Max:   ms(h.Max()),
	}
}
