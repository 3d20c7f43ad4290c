// Package hubtest holds the behavioural suites that every implementation of
// hub.Log and of hub.Presence must pass: the in-memory log, the embedded
// store and the cluster engines run the same tests. Call Run from a test of
// the log's package:
//
//	func TestLog(t *testing.T) {
//		hubtest.Run(t, hubtest.Suite{
//			New: func(t *testing.T, o hubtest.Options) hub.Log { return mylog.Open(…) },
//		})
//	}
//
// and RunPresence from a test of the presence's.
package hubtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/herald-sse/herald/hub"
)

// Options are what a test asks of a new log.
type Options struct {
	// Size, when positive, is the number of events the log must retain:
	// it must drop the oldest beyond it. Zero means a log that retains at
	// least a few hundred thousand events.
	Size int
	// MaxAge, when positive, is the age past which the log must drop
	// events.
	MaxAge time.Duration
}

// Suite describes the implementation under test.
type Suite struct {
	// New returns a new, empty log. The suite closes it.
	New func(t *testing.T, o Options) hub.Log
	// Bubble says that New may run inside a testing/synctest bubble: the
	// log uses no real network, and its clock is the bubble's. The
	// retention-by-age test then runs on fake time; otherwise it sleeps.
	Bubble bool
	// Fault, when set, returns a new, empty log whose storage fails on
	// demand, as a full disk does: after fail its commits fail, after
	// mend they can succeed again. The log must be a hub.HealthChecker
	// and recover on its own. The suite closes it. Without Fault, the
	// suite has no fault test.
	Fault func(t *testing.T) (l hub.Log, fail, mend func())
	// Lose, when set, returns a new, empty log over an engine that can
	// lose its history behind the log's back (a Redis restart that kept
	// nothing on disk), and lose, which makes it do so, epoch and all.
	// The suite closes the log. Without Lose, the suite has no test of
	// epochs (see hub.Log).
	Lose func(t *testing.T) (l hub.Log, lose func())
}

// Run runs the suite.
func Run(t *testing.T, s Suite) {
	tests := []struct {
		name string
		fn   func(*testing.T, Suite)
	}{
		{"Empty", testEmpty},
		{"AppendAndRead", testAppendAndRead},
		{"FieldsSurvive", testFieldsSurvive},
		{"Lookup", testLookup},
		{"DuplicateIDs", testDuplicateIDs},
		{"RetentionByCount", testRetentionByCount},
		{"RetentionByAge", testRetentionByAge},
		{"Wait", testWait},
		{"ConcurrentAppends", testConcurrentAppends},
		{"Close", testClose},
		{"Healthy", testHealthy},
		{"RecentReader", testRecentReader},
	}
	if s.Fault != nil {
		tests = append(tests, struct {
			name string
			fn   func(*testing.T, Suite)
		}{"Fault", testFault})
	}
	if s.Lose != nil {
		tests = append(tests, struct {
			name string
			fn   func(*testing.T, Suite)
		}{"LostHistory", testLostHistory})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, s) })
	}
}

func open(t *testing.T, s Suite, o Options) hub.Log {
	t.Helper()
	l := s.New(t, o)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func event(id string, topics ...string) *hub.Event {
	return &hub.Event{Update: hub.Update{ID: id, Topics: topics, Data: "data of " + id}}
}

func bounds(t *testing.T, l hub.Log) (first, next uint64) {
	t.Helper()
	first, next, err := l.Bounds(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return first, next
}

func read(t *testing.T, l hub.Log, from uint64, limit int) []*hub.Event {
	t.Helper()
	evs, err := l.Read(context.Background(), from, limit)
	if err != nil {
		t.Fatal(err)
	}
	checkShared(t, l, evs)
	return evs
}

// checkShared fails when the log hands out an event it shares between
// reads (the same *hub.Event from two reads) without preparing it
// (hub.Event.Prepare), which would have every subscriber encode it anew.
func checkShared(t *testing.T, l hub.Log, evs []*hub.Event) {
	t.Helper()
	if len(evs) == 0 {
		return
	}
	again, err := l.Read(context.Background(), evs[0].Pos, len(evs))
	if err != nil {
		t.Fatal(err)
	}
	for i := range min(len(evs), len(again)) {
		if ev := evs[i]; ev == again[i] && !ev.Prepared() {
			t.Fatalf("event %s at position %d is shared between reads but not prepared (hub.Event.Prepare)", ev.ID, ev.Pos)
		}
	}
}

func ids(evs []*hub.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func appendN(t *testing.T, l hub.Log, prefix string, n int) []*hub.Event {
	t.Helper()
	evs := make([]*hub.Event, n)
	for i := range evs {
		evs[i] = event(fmt.Sprintf("%s-%d", prefix, i), "t")
	}
	for i := 0; i < n; i += 100 {
		if err := l.Append(context.Background(), evs[i:min(i+100, n)]...); err != nil {
			t.Fatal(err)
		}
	}
	return evs
}

func testEmpty(t *testing.T, s Suite) {
	l := open(t, s, Options{})
	first, next := bounds(t, l)
	if first != next || first == 0 {
		t.Fatalf("an empty log has bounds [%d, %d)", first, next)
	}
	if evs := read(t, l, 0, 10); len(evs) != 0 {
		t.Fatalf("an empty log read %d events", len(evs))
	}
	if _, ok, err := l.Lookup(context.Background(), "x"); ok || err != nil {
		t.Fatalf("Lookup in an empty log: %v, %v", ok, err)
	}
}

func testAppendAndRead(t *testing.T, s Suite) {
	l := open(t, s, Options{})
	_, start := bounds(t, l)
	before := time.Now().Add(-time.Second)
	evs := appendN(t, l, "e", 250)
	for i, ev := range evs {
		if ev.Pos != start+uint64(i) {
			t.Fatalf("event %d got position %d, want %d", i, ev.Pos, start+uint64(i))
		}
		if ev.Time.Before(before) || ev.Time.After(time.Now().Add(time.Second)) {
			t.Fatalf("event %d got time %v", i, ev.Time)
		}
	}
	first, next := bounds(t, l)
	if first != start || next != start+250 {
		t.Fatalf("bounds [%d, %d), want [%d, %d)", first, next, start, start+250)
	}
	for _, c := range []struct {
		from  uint64
		limit int
		want  []*hub.Event
	}{
		{start, 1000, evs},
		{0, 10, evs[:10]},
		{start + 100, 7, evs[100:107]},
		{start + 249, 10, evs[249:]},
		{start + 250, 10, nil},
		{start + 10_000, 10, nil},
		{start, 0, nil},
	} {
		got := read(t, l, c.from, c.limit)
		if !slices.Equal(ids(got), ids(c.want)) {
			t.Fatalf("Read(%d, %d): %d events from %v, want %d", c.from, c.limit, len(got), first1(got), len(c.want))
		}
		for i, ev := range got {
			if ev.Pos != c.want[i].Pos {
				t.Fatalf("Read(%d, %d): event %s at position %d, want %d", c.from, c.limit, ev.ID, ev.Pos, c.want[i].Pos)
			}
		}
	}
}

func first1(evs []*hub.Event) string {
	if len(evs) == 0 {
		return "none"
	}
	return evs[0].ID
}

func testFieldsSurvive(t *testing.T, s Suite) {
	l := open(t, s, Options{})
	in := &hub.Event{Update: hub.Update{
		Topics:  []string{"https://example.com/a", "https://example.com/alt/{x}", "é"},
		Data:    "line 1\nline 2\r\n\x00binary\xff",
		Private: true,
		ID:      "urn:uuid:0192f0c4-7a1e-7b3c-8d2e-000000000001",
		Type:    "update",
		Retry:   1500 * time.Millisecond,
		End:     true,
	}}
	if err := l.Append(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	got := read(t, l, in.Pos, 1)
	if len(got) != 1 {
		t.Fatalf("read %d events", len(got))
	}
	out := got[0]
	if !slices.Equal(out.Topics, in.Topics) || out.Data != in.Data || out.Private != in.Private || out.ID != in.ID ||
		out.Type != in.Type || out.Retry != in.Retry || out.End != in.End || out.Pos != in.Pos || !out.Time.Equal(in.Time) {
		t.Fatalf("read back %+v, appended %+v", out, in)
	}
}

func testLookup(t *testing.T, s Suite) {
	l := open(t, s, Options{})
	evs := appendN(t, l, "look", 1000)
	for _, i := range []int{0, 1, 499, 998, 999} {
		pos, ok, err := l.Lookup(context.Background(), evs[i].ID)
		if err != nil || !ok || pos != evs[i].Pos {
			t.Fatalf("Lookup(%s) = %d, %v, %v; want %d", evs[i].ID, pos, ok, err, evs[i].Pos)
		}
	}
	if _, ok, _ := l.Lookup(context.Background(), "look-1000"); ok {
		t.Fatal("found an event never appended")
	}
}

func testDuplicateIDs(t *testing.T, s Suite) {
	l := open(t, s, Options{})
	if err := l.Append(context.Background(), event("a", "t")); err != nil {
		t.Fatal(err)
	}
	_, next := bounds(t, l)
	for _, batch := range [][]*hub.Event{
		{event("a", "t")},
		{event("b", "t"), event("a", "t")},
		{event("c", "t"), event("c", "t")},
	} {
		if err := l.Append(context.Background(), batch...); !errors.Is(err, hub.ErrDuplicateID) {
			t.Fatalf("appending %v: %v, want ErrDuplicateID", ids(batch), err)
		}
	}
	if _, n := bounds(t, l); n != next {
		t.Fatalf("a refused batch moved the end from %d to %d", next, n)
	}
	for _, id := range []string{"b", "c"} {
		if _, ok, _ := l.Lookup(context.Background(), id); ok {
			t.Fatalf("%s of a refused batch was kept", id)
		}
	}
}

func testRetentionByCount(t *testing.T, s Suite) {
	l := open(t, s, Options{Size: 100})
	evs := appendN(t, l, "r", 350)
	first, next := bounds(t, l)
	if next-first != 100 || first != evs[250].Pos {
		t.Fatalf("bounds [%d, %d) after 350 events in a log of 100; want [%d, %d)", first, next, evs[250].Pos, evs[349].Pos+1)
	}
	if got := read(t, l, evs[0].Pos, 10); len(got) == 0 || got[0].ID != evs[250].ID {
		t.Fatalf("reading from a dropped position gave %v, want the first retained", first1(got))
	}
	if _, ok, _ := l.Lookup(context.Background(), evs[249].ID); ok {
		t.Fatal("a dropped event can still be found")
	}
	if pos, ok, _ := l.Lookup(context.Background(), evs[250].ID); !ok || pos != evs[250].Pos {
		t.Fatal("the first retained event cannot be found")
	}
	// A dropped ID may be used again.
	if err := l.Append(context.Background(), event(evs[0].ID, "t")); err != nil {
		t.Fatalf("re-using a dropped ID: %v", err)
	}
}

func testRetentionByAge(t *testing.T, s Suite) {
	run := func(t *testing.T, age time.Duration, sleep func(time.Duration)) {
		l := open(t, s, Options{MaxAge: age})
		old := appendN(t, l, "old", 10)
		sleep(age + age/2)
		young := appendN(t, l, "young", 5)
		first, next := bounds(t, l)
		if first != young[0].Pos || next != young[4].Pos+1 {
			t.Fatalf("bounds [%d, %d), want the young events [%d, %d)", first, next, young[0].Pos, young[4].Pos+1)
		}
		if _, ok, _ := l.Lookup(context.Background(), old[9].ID); ok {
			t.Fatal("an expired event can still be found")
		}
	}
	if s.Bubble {
		synctest.Test(t, func(t *testing.T) { run(t, time.Hour, time.Sleep) })
		return
	}
	run(t, 2*time.Second, time.Sleep)
}

func testWait(t *testing.T, s Suite) {
	l := open(t, s, Options{})
	ctx := context.Background()
	_, next := bounds(t, l)
	if next > 1 {
		if err := l.Wait(ctx, next-1); err != nil {
			t.Fatalf("Wait for a position already there: %v", err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- l.Wait(ctx, next) }()
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v before an append", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := l.Append(ctx, event("w", "t")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after an append")
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { done <- l.Wait(cctx, next+100) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait after its context ended: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait ignored its context")
	}
}

func testConcurrentAppends(t *testing.T, s Suite) {
	l := open(t, s, Options{})
	_, start := bounds(t, l)
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := l.Append(context.Background(), event(fmt.Sprintf("w%d-%d", w, i), "t")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	evs := read(t, l, start, 2*writers*each)
	if len(evs) != writers*each {
		t.Fatalf("read %d events, want %d", len(evs), writers*each)
	}
	last := map[int]int{}
	for i, ev := range evs {
		if ev.Pos != start+uint64(i) {
			t.Fatalf("event %d at position %d", i, ev.Pos)
		}
		var w, n int
		if _, err := fmt.Sscanf(ev.ID, "w%d-%d", &w, &n); err != nil {
			t.Fatal(err)
		}
		if prev, ok := last[w]; ok && n != prev+1 {
			t.Fatalf("writer %d's events out of order: %d after %d", w, n, prev)
		}
		last[w] = n
	}
}

func testClose(t *testing.T, s Suite) {
	l := s.New(t, Options{})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	ctx := context.Background()
	if err := l.Append(ctx, event("x", "t")); !errors.Is(err, hub.ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := l.Read(ctx, 0, 1); !errors.Is(err, hub.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	if _, _, err := l.Lookup(ctx, "x"); !errors.Is(err, hub.ErrClosed) {
		t.Errorf("Lookup after Close: %v", err)
	}
	if _, _, err := l.Bounds(ctx); !errors.Is(err, hub.ErrClosed) {
		t.Errorf("Bounds after Close: %v", err)
	}
	if err := l.Wait(ctx, 1<<40); !errors.Is(err, hub.ErrClosed) {
		t.Errorf("Wait after Close: %v", err)
	}
}

// A log that is a hub.RecentReader answers ReadRecent, when it reports ok,
// as Read would, with prepared events (the hub shares them between
// subscribers), and reports false once closed. Which reads it answers is
// its own choice.
func testRecentReader(t *testing.T, s Suite) {
	l := open(t, s, Options{Size: 100})
	rr, ok := l.(hub.RecentReader)
	if !ok {
		t.Skip("the log is not a hub.RecentReader")
	}
	evs := appendN(t, l, "m", 350)
	_, next := bounds(t, l)
	for _, from := range []uint64{0, evs[0].Pos, evs[249].Pos, evs[250].Pos, evs[300].Pos, evs[349].Pos, next, next + 10} {
		for _, limit := range []int{0, 1, 10, 1000} {
			got, ok := rr.ReadRecent(from, limit)
			if !ok {
				continue
			}
			want := read(t, l, from, limit)
			if !slices.Equal(ids(got), ids(want)) {
				t.Fatalf("ReadRecent(%d, %d): %d events from %v; Read: %d from %v", from, limit, len(got), first1(got), len(want), first1(want))
			}
			for i, ev := range got {
				if ev.Pos != want[i].Pos {
					t.Fatalf("ReadRecent(%d, %d): event %s at position %d, Read's at %d", from, limit, ev.ID, ev.Pos, want[i].Pos)
				}
				if !ev.Prepared() {
					t.Fatalf("ReadRecent(%d, %d): event %s is not prepared (hub.Event.Prepare)", from, limit, ev.ID)
				}
			}
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := rr.ReadRecent(next-1, 1); ok {
		t.Fatal("ReadRecent answered after Close")
	}
}

// A log is healthy, as the hub's Ready sees it, until it is closed: its
// Healthy if it is a hub.HealthChecker, its Bounds otherwise.
func testHealthy(t *testing.T, s Suite) {
	l := s.New(t, Options{})
	health := func() error {
		if hc, ok := l.(hub.HealthChecker); ok {
			return hc.Healthy()
		}
		_, _, err := l.Bounds(context.Background())
		return err
	}
	appendN(t, l, "h", 10)
	if err := health(); err != nil {
		t.Fatalf("the health of an open log: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := health(); !errors.Is(err, hub.ErrClosed) {
		t.Fatalf("the health of a closed log: %v", err)
	}
}

// A log whose storage fails refuses the append that met the fault and
// every one after it, promptly, with hub.ErrUnavailable, and says it is
// unhealthy; reads go on; once the storage mends, it takes appends again
// by itself; no acknowledged event is lost or reordered; it closes, during
// the fault too.
func testFault(t *testing.T, s Suite) {
	ctx := context.Background()
	l, fail, mend := s.Fault(t)
	t.Cleanup(func() { _ = l.Close() })
	hc, ok := l.(hub.HealthChecker)
	if !ok {
		t.Fatal("a log with faults does not report its health")
	}
	var acked []string
	publish := func(id string) error {
		err := l.Append(ctx, event(id, "t"))
		if err == nil {
			acked = append(acked, id)
		}
		return err
	}
	for i := range 3 {
		if err := publish(fmt.Sprint("a", i)); err != nil {
			t.Fatal(err)
		}
	}
	fail()
	var err error
	for i := 0; err == nil; i++ {
		if i == 1000 {
			t.Fatal("1,000 appends on failing storage succeeded")
		}
		err = publish(fmt.Sprint("b", i))
	}
	if !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("an append on failing storage: %v", err)
	}
	if err := publish("b-next"); !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("an append after a failed one: %v", err)
	}
	if err := hc.Healthy(); !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("Healthy on failing storage: %v", err)
	}
	if evs := read(t, l, 1, 3); len(evs) != 3 {
		t.Fatalf("read %d events on failing storage", len(evs))
	}
	mend()
	for hc.Healthy() != nil {
		time.Sleep(10 * time.Millisecond) // a log that never recovers fails by the test's timeout
	}
	for i := range 3 {
		if err := publish(fmt.Sprint("c", i)); err != nil {
			t.Fatalf("an append once the storage mended: %v", err)
		}
	}
	_, next := bounds(t, l)
	i := 0
	for _, ev := range read(t, l, 1, int(next)) {
		switch {
		case i < len(acked) && ev.ID == acked[i]:
			i++
		case ev.ID[0] != 'b':
			t.Fatalf("an event never appended: %s", ev.ID)
		}
	}
	if i != len(acked) {
		t.Fatalf("%d of the %d acknowledged events in order", i, len(acked))
	}
	fail()
	if err := l.Close(); err != nil {
		t.Logf("Close on failing storage: %v", err)
	}
}

// testLostHistory: when the engine loses the history, the log notices (its
// epoch changed) and its positions go on from where they were, the lost
// events reading as dropped from the front; a reader waiting for the next
// position is woken by the new events, not left waiting for positions that
// never come; the lost IDs are free again.
func testLostHistory(t *testing.T, s Suite) {
	ctx := context.Background()
	l, lose := s.Lose(t)
	t.Cleanup(func() { _ = l.Close() })
	appendN(t, l, "a", 5)
	if first, next := bounds(t, l); first != 1 || next != 6 {
		t.Fatalf("bounds [%d, %d) after 5 events", first, next)
	}
	woken := make(chan error, 1)
	go func() { woken <- l.Wait(ctx, 5) }()
	lose()
	// The append that finds the loss may fail as unavailable; the log
	// takes appends again on its own.
	b := event("b", "t")
	for {
		err := l.Append(ctx, b)
		if err == nil {
			break
		}
		if !errors.Is(err, hub.ErrUnavailable) {
			t.Fatalf("an append after the loss: %v", err)
		}
		b = event("b", "t")
		time.Sleep(10 * time.Millisecond) // a log that never takes it fails by the test's timeout
	}
	if b.Pos < 6 {
		t.Fatalf("after the loss an event got position %d, within the lost ones' [1, 6)", b.Pos)
	}
	if err := <-woken; err != nil {
		t.Fatalf("the reader waiting past position 5: %v", err)
	}
	first, next := bounds(t, l)
	if first < 6 || first > b.Pos || next != b.Pos+1 {
		t.Fatalf("bounds [%d, %d) after the loss, with the new event at %d", first, next, b.Pos)
	}
	if evs := read(t, l, 1, 10); len(evs) != 1 || evs[0].ID != "b" || evs[0].Pos != b.Pos {
		t.Fatalf("read from 1 after the loss: %v", ids(evs))
	}
	if _, ok, err := l.Lookup(ctx, "a-3"); err != nil || ok {
		t.Fatalf("a lost ID is found: %v %v", ok, err)
	}
	if p, ok, err := l.Lookup(ctx, "b"); err != nil || !ok || p != b.Pos {
		t.Fatalf("Lookup of the new event: %d %v %v", p, ok, err)
	}
	again := event("a-3", "t")
	if err := l.Append(ctx, again); err != nil || again.Pos != b.Pos+1 {
		t.Fatalf("a lost ID appended again: %v, position %d", err, again.Pos)
	}
}
