package hubtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/sse"
)

// LongEnv names the environment variable that runs the long tests at their
// full sizes when it is set to anything but the empty string:
//
//	HERALD_LONG=1 go test ./store/...
//
// Without it they run with smaller sizes that take the same paths (a
// history past a memtable's worth, say), so that the race detector's run
// of every test stays quick. A long test, one that asks Size for its
// size, has Long in its name: scripts/test.sh runs those again at full
// size without the race detector.
const LongEnv = "HERALD_LONG"

// Long reports whether the long tests run at their full sizes (LongEnv).
func Long() bool { return os.Getenv(LongEnv) != "" }

// Size returns full when the long tests run at their full sizes, and
// short otherwise.
func Size(short, full int) int {
	if Long() {
		return full
	}
	return short
}

// Fill appends n events to l, in batches of 10,000, with the IDs ID(0) …
// ID(n-1), each on one of 16 topics.
func Fill(tb testing.TB, l hub.Log, n int) {
	tb.Helper()
	const batch = 10_000
	evs := make([]*hub.Event, 0, batch)
	for i := range n {
		evs = append(evs, &hub.Event{Update: hub.Update{
			ID: ID(i), Topics: []string{fmt.Sprint("https://example.com/t/", i%16)}, Data: fmt.Sprintf(`{"n":%d}`, i),
		}})
		if len(evs) == batch || i == n-1 {
			if err := l.Append(context.Background(), evs...); err != nil {
				tb.Fatal(err)
			}
			evs = evs[:0]
		}
	}
}

// ID is the ID Fill gives its event i.
func ID(i int) string { return fmt.Sprintf("urn:uuid:0192f0c4-7a1e-7b3c-8d2e-%012x", i) }

// ResumeInHistory fills l, empty, with n events and serves it from a hub:
// a client resuming from any of them, over HTTP, gets exactly the events
// after it. It checks the first event, the last ones, and six at random
// over their next 2,000 events, and the first one over the whole rest of
// the history.
func ResumeInHistory(t *testing.T, l hub.Log, n int) {
	start := time.Now()
	Fill(t, l, n)
	t.Logf("a history of %d events written in %v", n, time.Since(start).Round(time.Millisecond))
	h, err := hub.New(hub.Config{Log: l, Heartbeat: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer h.Close()

	rng := rand.New(rand.NewPCG(5, 6))
	points := []int{0, n - 2, n - 1}
	for range 6 {
		points = append(points, rng.IntN(n))
	}
	var wg sync.WaitGroup
	for k, from := range points {
		check := min(n-1-from, 2000)
		if k == 0 {
			check = n - 1 - from
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(srv.URL + hub.Path + "?topic=*&lastEventID=" + url.QueryEscape(ID(from)))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			if got := resp.Header.Get("Last-Event-ID"); got != ID(from) {
				t.Errorf("resume from %d: Last-Event-ID %q", from, got)
				return
			}
			d := sse.NewDecoder(resp.Body)
			for i := from + 1; i <= from+check; i++ {
				var ev sse.Event
				if err := d.Decode(&ev); err != nil {
					t.Errorf("resume from %d: event %d: %v", from, i, err)
					return
				}
				if ev.ID != ID(i) || ev.Data != fmt.Sprintf(`{"n":%d}`, i) {
					t.Errorf("resume from %d: got %s, want %s", from, ev.ID, ID(i))
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchLookup benchmarks Lookup, of a random ID, in histories of 10,000
// and 1,000,000 events made by Fill in logs that newLog opens (retaining
// at least 2,000,000 events): a seek costs about the same at both sizes.
func BenchLookup(b *testing.B, newLog func(b *testing.B) hub.Log) {
	benchSizes(b, newLog, func(b *testing.B, l hub.Log, n int) {
		rng := rand.New(rand.NewPCG(1, 2))
		ctx := context.Background()
		for b.Loop() {
			i := rng.IntN(n)
			p, ok, err := l.Lookup(ctx, ID(i))
			if err != nil || !ok {
				b.Fatalf("Lookup(%d) = %d, %v, %v", i, p, ok, err)
			}
		}
	})
}

// BenchResume benchmarks what a resume costs a log: the lookup of a random
// ID and the read of the 100 events after it, away from the most recent
// events (which stores keep in memory).
func BenchResume(b *testing.B, newLog func(b *testing.B) hub.Log) {
	benchSizes(b, newLog, func(b *testing.B, l hub.Log, n int) {
		rng := rand.New(rand.NewPCG(1, 2))
		ctx := context.Background()
		for b.Loop() {
			i := rng.IntN(n - 9000)
			p, _, err := l.Lookup(ctx, ID(i))
			if err != nil {
				b.Fatal(err)
			}
			evs, err := l.Read(ctx, p+1, 100)
			if err != nil || len(evs) != 100 {
				b.Fatalf("read %d, %v", len(evs), err)
			}
		}
	})
}

func benchSizes(b *testing.B, newLog func(b *testing.B) hub.Log, fn func(*testing.B, hub.Log, int)) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("history=%d", n), func(b *testing.B) {
			l := newLog(b)
			defer l.Close()
			Fill(b, l, n)
			b.ReportAllocs()
			b.ResetTimer()
			fn(b, l, n)
		})
	}
}
