package histogram_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/herald-sse/herald/internal/histogram"
)

func TestRecorder(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		bounds []uint64
		obs    []uint64
		counts []uint64
		sum    uint64
	}{
		{"none", []uint64{1, 10}, nil, []uint64{0, 0, 0}, 0},
		{"on the bounds", []uint64{1, 10}, []uint64{0, 1, 10}, []uint64{2, 1, 0}, 11},
		{"past the last bound", []uint64{1, 10}, []uint64{11, 1000}, []uint64{0, 0, 2}, 1011},
		{"no bound", nil, []uint64{3, 4}, []uint64{2}, 7},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := histogram.New(c.bounds...)
			for _, v := range c.obs {
				r.Observe(v)
			}
			s := r.Snapshot()
			if !slices.Equal(s.Counts, c.counts) || s.Sum != c.sum || s.Count != uint64(len(c.obs)) {
				t.Fatalf("got counts %v, count %d, sum %d; want %v, %d, %d", s.Counts, s.Count, s.Sum, c.counts, len(c.obs), c.sum)
			}
		})
	}
}

// Concurrent observations are all counted.
func TestRecorderConcurrent(t *testing.T) {
	t.Parallel()
	r := histogram.New(1, 2, 4)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				r.Observe(uint64(i+g) % 6)
			}
		})
	}
	wg.Wait()
	if s := r.Snapshot(); s.Count != 4000 || s.Counts[0]+s.Counts[1]+s.Counts[2]+s.Counts[3] != 4000 {
		t.Fatalf("counted %d (%v), want 4000", s.Count, s.Counts)
	}
}

func TestScaled(t *testing.T) {
	t.Parallel()
	r := histogram.New(1000, 2000)
	r.Observe(1500)
	bounds, sum := r.Snapshot().Scaled(1e-3)
	if !slices.Equal(bounds, []float64{1, 2}) || sum != 1.5 {
		t.Fatalf("scaled: %v %v", bounds, sum)
	}
}

func TestNewRefusesBoundsOutOfOrder(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	histogram.New(2, 1)
}
