package window

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/herald-sse/herald/hub"
)

func events(from, to uint64) []*hub.Event {
	var evs []*hub.Event
	for p := from; p < to; p++ {
		evs = append(evs, &hub.Event{Pos: p, Update: hub.Update{ID: fmt.Sprint(p), Data: "x"}})
	}
	return evs
}

func positions(t *testing.T, evs []*hub.Event) []uint64 {
	t.Helper()
	var ps []uint64
	for _, ev := range evs {
		if !ev.Prepared() {
			t.Fatalf("event %d is not prepared", ev.Pos)
		}
		ps = append(ps, ev.Pos)
	}
	return ps
}

func checkRead(t *testing.T, w *Window, from uint64, limit int, want []uint64, wantOK bool) {
	t.Helper()
	evs, ok := w.Read(from, limit)
	if got := positions(t, evs); ok != wantOK || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Read(%d, %d) = %v, %v; want %v, %v", from, limit, got, ok, want, wantOK)
	}
}

func TestReadFromMemoryOnly(t *testing.T) {
	// Retains [3, 20), holds the last 4: 16..19.
	w := New(4, 3, 20, events(10, 20))
	if first, next := w.Bounds(); first != 3 || next != 20 {
		t.Fatalf("bounds %d %d", first, next)
	}
	checkRead(t, w, 16, 10, []uint64{16, 17, 18, 19}, true)
	checkRead(t, w, 18, 1, []uint64{18}, true)
	checkRead(t, w, 20, 10, nil, true)
	checkRead(t, w, 99, 10, nil, true)
	checkRead(t, w, 15, 10, nil, false) // retained, not held: the engine's
	checkRead(t, w, 1, 10, nil, false)  // before first: from first, which is the engine's
	checkRead(t, w, 16, 0, nil, true)
}

func TestAdvance(t *testing.T) {
	w := New(4, 1, 1, nil)
	checkRead(t, w, 1, 10, nil, true)
	w.Advance(1, 3, events(1, 3)...)
	checkRead(t, w, 0, 10, []uint64{1, 2}, true)
	w.Advance(1, 6, events(3, 6)...)
	checkRead(t, w, 1, 10, nil, false) // 1 fell out of memory
	checkRead(t, w, 2, 10, []uint64{2, 3, 4, 5}, true)
	// Retention drops the front: reads start at the first retained.
	w.Advance(4, 6)
	checkRead(t, w, 1, 10, []uint64{4, 5}, true)
	// Events that do not follow on: the ones before are the engine's.
	w.Advance(4, 10, events(8, 10)...)
	checkRead(t, w, 8, 10, []uint64{8, 9}, true)
	checkRead(t, w, 6, 10, nil, false)
	// Growth with no events: nothing is in memory.
	w.Advance(4, 12)
	checkRead(t, w, 10, 10, nil, false)
	checkRead(t, w, 12, 10, nil, true)
	// A lost history: the positions continue, and nothing before is
	// retained.
	w.Advance(12, 12)
	if first, next := w.Bounds(); first != 12 || next != 12 {
		t.Fatalf("bounds %d %d", first, next)
	}
	checkRead(t, w, 1, 10, nil, true)
	w.Advance(12, 13, events(12, 13)...)
	checkRead(t, w, 1, 10, []uint64{12}, true)
	// The bounds never move back.
	w.Advance(2, 5)
	if first, next := w.Bounds(); first != 12 || next != 13 {
		t.Fatalf("bounds moved back: %d %d", first, next)
	}
}

func TestAdvancePanicsOnEventsThatGoBack(t *testing.T) {
	w := New(4, 1, 5, events(1, 5))
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	w.Advance(1, 6, events(4, 6)...)
}

func TestWait(t *testing.T) {
	w := New(4, 1, 3, events(1, 3))
	ctx := context.Background()
	if err := w.Wait(ctx, 2); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	go func() { done <- w.Wait(ctx, 3) }()
	go func() { done <- w.Wait(ctx, 4) }()
	w.Advance(1, 4, events(3, 4)...)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The other waits for 4: a trim does not wake it for good.
	w.Advance(2, 4)
	w.Close()
	if err := <-done; !errors.Is(err, hub.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if err := w.Wait(ctx, 1); !errors.Is(err, hub.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	w.Close()
	w.Advance(2, 5, events(4, 5)...) // a feeder that has not stopped yet
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := New(1, 1, 1, nil).Wait(cctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
}
