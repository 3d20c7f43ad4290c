package hub

import (
	"bytes"
	"log/slog"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// Drops are logged at most once per dropLogEvery: the first at once, the
// ones that follow within the interval together at its end, each line with
// its count, its reasons and the running total.
func TestSlowDropsLogAtMostOnceASecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		d := &slowDrops{logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			},
		})), timeout: 5 * time.Second}
		lines := func() []string {
			d.mu.Lock()
			defer d.mu.Unlock()
			return strings.Split(strings.TrimSpace(buf.String()), "\n")
		}
		d.add(stalled)
		for range 1872 {
			d.add(stalled)
		}
		d.add(lost)
		if got := lines(); len(got) != 1 {
			t.Fatalf("%d lines at once, want 1: %q", len(got), got)
		}
		time.Sleep(dropLogEvery)
		synctest.Wait()
		d.add(lost)
		d.stop()
		want := []string{
			`level=WARN msg="hub: dropped slow subscribers" dropped=1 reason="stalled: a write did not finish in 5s" total=1`,
			`level=WARN msg="hub: dropped slow subscribers" dropped=1873 reason="stalled: a write did not finish in 5s (1872); fell behind the history (1)" total=1874`,
			`level=WARN msg="hub: dropped slow subscribers" dropped=1 reason="fell behind the history" total=1875`,
		}
		if got := lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if d.total.Load() != 1875 {
			t.Fatalf("total %d", d.total.Load())
		}
	})
}

// BenchmarkWriteCounters measures what counting a write costs when every
// CPU writes to subscribers at once: into one shared counter ("shared"),
// as a single atomic would, against the shards the hub uses ("sharded",
// each goroutine standing for subscribers on shards of their own draw).
// The gap is the cache line going from core to core; it grows with the
// cores.
func BenchmarkWriteCounters(b *testing.B) {
	b.Run("shared", func(b *testing.B) {
		var c writeShard
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.bytes.Add(100)
				c.events.Add(1)
			}
		})
	})
	b.Run("sharded", func(b *testing.B) {
		c := newCounters(runtime.GOMAXPROCS(0))
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			s := &c.writes[int(next.Add(1))%len(c.writes)]
			for pb.Next() {
				s.bytes.Add(100)
				s.events.Add(1)
			}
		})
	})
}

// Every error code of docs/api.md's table is counted under its own name:
// one missing from refusalCodes would be counted as internal_error.
func TestRefusalCodesCoverTheAPI(t *testing.T) {
	doc, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| [0-9]{3} \\| `([a-z_]+)` \\|")
	rows := row.FindAllStringSubmatch(string(doc), -1)
	if len(rows) < 20 {
		t.Fatalf("found %d rows of error codes in docs/api.md", len(rows))
	}
	for _, m := range rows {
		if code := m[1]; !slices.Contains(refusalCodes[:], code) {
			t.Errorf("the code %s of docs/api.md is not in refusalCodes", code)
		}
	}
}
