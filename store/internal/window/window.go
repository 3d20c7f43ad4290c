// Package window is the in-memory end of a herald history: its bounds, its
// most recent events, and the goroutines waiting for more. The embedded
// stores (through logcore) and the Redis store keep one each, so that live
// delivery and short catch-ups read memory, never the engine, and Wait
// costs no engine command.
package window

import (
	"context"
	"sync"

	"github.com/herald-sse/herald/hub"
)

// Window holds the bounds [first, next) of a log and its events of
// positions [from, next), at most size of them. It is safe for concurrent
// use.
type Window struct {
	mu     sync.RWMutex
	first  uint64
	next   uint64
	from   uint64       // the first position held in memory
	ring   []*hub.Event // ring[p%len(ring)] is the event at position p, for p in [from, next); prepared
	wake   chan struct{}
	closed bool
}

// New returns a window over a log that retains the positions [first,
// next), holding recent, its last events in order (the last of them at
// next-1; those that do not fit are left out).
func New(size int, first, next uint64, recent []*hub.Event) *Window {
	w := &Window{
		first: first,
		next:  next,
		from:  next,
		ring:  make([]*hub.Event, max(size, 1)),
		wake:  make(chan struct{}),
	}
	w.put(recent)
	w.from = max(w.from, w.first)
	return w
}

// Size is the number of events the window holds at most.
func (w *Window) Size() int { return len(w.ring) }

// put stores evs, which end at w.next-1 and follow on one another, and
// moves w.from back over them. w.mu is held.
func (w *Window) put(evs []*hub.Event) {
	if len(evs) > len(w.ring) {
		evs = evs[len(evs)-len(w.ring):]
	}
	for _, ev := range evs {
		ev.Prepare() // before the window shares it with every reader
		w.ring[ev.Pos%uint64(len(w.ring))] = ev
	}
	if len(evs) > 0 {
		w.from = min(w.from, evs[0].Pos)
	}
}

// Bounds returns the first retained position and the next position.
func (w *Window) Bounds() (first, next uint64) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.first, w.next
}

// Advance moves the bounds to [first, next) and wakes the waiters. evs are
// the events appended since the last call, or the last of them: they
// follow on one another and end at next-1. When they do not start at the
// old next (or there are none, next having grown), the positions before
// them are retained but not held in memory: Read says so, and the caller
// reads its engine. Neither bound moves back; a first past next empties
// the log (an engine that lost its history: the positions it had
// continue, and what was lost reads as dropped from the front). Advance
// prepares the events (hub.Event.Prepare).
func (w *Window) Advance(first, next uint64, evs ...*hub.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return // a feeder that has not stopped yet: nothing waits any more
	}
	if len(evs) > 0 && (evs[len(evs)-1].Pos != next-1 || evs[0].Pos < w.next) {
		panic("window: Advance's events do not end at next-1, or go back")
	}
	next = max(next, w.next, first)
	grew := next > w.next
	if grew && (len(evs) == 0 || evs[0].Pos != w.next) {
		w.from = next // a gap in memory: what the window held is older than it
	}
	w.next = next
	w.put(evs)
	w.first = max(w.first, first)
	w.from = max(w.from, w.first, w.next-min(w.next, uint64(len(w.ring))))
	if grew {
		close(w.wake)
		w.wake = make(chan struct{})
	}
}

// Read returns up to limit events from position from, from memory, in
// order; a from no longer retained reads from the first retained event,
// and a from at or past the end reads none. ok is false when the window
// does not hold from (it is retained, but older than the events held):
// the caller reads its engine then. Read never blocks on I/O.
func (w *Window) Read(from uint64, limit int) (evs []*hub.Event, ok bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	from = max(from, w.first)
	if from >= w.next || limit <= 0 {
		return nil, true
	}
	if from < w.from {
		return nil, false
	}
	evs = make([]*hub.Event, min(w.next-from, uint64(limit)))
	for i := range evs {
		evs[i] = w.ring[(from+uint64(i))%uint64(len(w.ring))]
	}
	return evs, true
}

// Wait blocks until the next position is past after, or ctx ends, or the
// window is closed (hub.ErrClosed), as hub.Log's Wait.
func (w *Window) Wait(ctx context.Context, after uint64) error {
	for {
		w.mu.RLock()
		closed, next, wake := w.closed, w.next, w.wake
		w.mu.RUnlock()
		switch {
		case closed:
			return hub.ErrClosed
		case next > after:
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Closed reports whether Close was called.
func (w *Window) Closed() bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.closed
}

// Close wakes every waiter; from then on Wait returns hub.ErrClosed, and
// Advance does nothing. It is idempotent.
func (w *Window) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.wake)
	}
}
