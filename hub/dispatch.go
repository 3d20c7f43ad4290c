package hub

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// dispatchLoop follows the log and offers each event to its subscribers,
// in log order. It is the only goroutine that offers events.
func (h *Hub) dispatchLoop(next uint64) {
	defer h.bg.Done()
	r := &h.rounds
	r.interval = max(h.cfg.BatchInterval, 0)
	r.base, r.max = r.interval, max(h.cfg.MaxBatchInterval, r.interval)
	var until untilDue
	defer until.stop()
	for {
		var err error
		if len(r.ready) > 0 {
			// Subscribers are waiting for their turn: wait for more
			// events only until the first of them is due.
			if wait := time.Until(r.due()); wait > 0 {
				err = h.log.Wait(until.context(h.ctx, r.due(), wait), next)
				if err != nil && h.ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
					err = nil
				}
			}
			if err == nil && !time.Now().Before(r.due()) {
				h.release(false)
				continue
			}
		} else {
			err = h.log.Wait(h.ctx, next)
		}
		var evs []*Event
		if err == nil {
			evs, err = h.log.Read(h.ctx, next, 256)
		}
		if err != nil {
			if h.ctx.Err() == nil {
				h.storeFailed(h.ctx, opRead, err)
				err = fmt.Errorf("hub: the log failed; no event is delivered from position %d on: %w", next, err)
				h.broken.Store(&err)
				h.logger.Error(err.Error())
			}
			h.release(true)
			h.passBatch()
			return
		}
		for i, ev := range evs {
			if ev.Pos != next {
				h.fellBehind(next, ev.Pos)
			}
			h.dispatch(ev)
			next = ev.Pos + 1
			if i%readyEvery == readyEvery-1 {
				h.release(false)
			}
		}
		h.release(false)
		h.passBatch()
	}
}

// untilDue holds the context of the dispatcher's waits that end when the
// first subscriber waiting for its turn is due: one per due time, not one
// per event.
type untilDue struct {
	at     time.Time
	ctx    context.Context
	cancel context.CancelFunc
}

// context returns a context that ends at due, wait from now.
func (u *untilDue) context(parent context.Context, due time.Time, wait time.Duration) context.Context {
	if u.ctx == nil || !u.at.Equal(due) {
		u.stop()
		u.ctx, u.cancel = context.WithTimeout(parent, wait)
		u.at = due
	}
	return u.ctx
}

func (u *untilDue) stop() {
	if u.cancel != nil {
		u.cancel()
	}
}

// readyEvery is how many events of a batch the dispatcher offers before
// it schedules the subscribers they woke: a subscriber then gets the
// events of a batch in one write, not one write each, and the first of
// them waits at most for the offers of the others, some tens of
// microseconds per event at a thousand subscribers.
const readyEvery = 16

// rounds is the dispatcher's pacing of writes. A subscriber woken by an
// offer goes at once if it is quiet, written last an interval ago or more;
// otherwise it waits for the next round, and rounds come at most once per
// interval. So under load a subscriber gets the events of an interval in
// one write, and after a quiet spell its first event goes at once. Only
// the dispatcher touches it.
type rounds struct {
	interval time.Duration // the current interval, in [base, max]; 0: no pacing
	base     time.Duration // BatchInterval
	max      time.Duration // MaxBatchInterval
	last     time.Time     // when the last round went; zero: never
	offers   int           // events offered to subscribers since the last round
	wakes    int           // subscribers woken by them since the last round
	ready    []*subscriber // woken by offers, not yet scheduled
	checked  int           // ready[:checked] are waiting for the next round
	pool     []*subscriber // scratch: the pool workers' share of a release
}

// due returns when the next round may go.
func (r *rounds) due() time.Time { return r.last.Add(r.interval) }

// release schedules the woken subscribers whose turn has come: every one
// when a round is due, or with all; otherwise the quiet ones. The others
// wait for the next round.
func (h *Hub) release(all bool) {
	r := &h.rounds
	if len(r.ready) == 0 {
		return
	}
	now := time.Now()
	round := all || !now.Before(r.due())
	start := 0
	if !round {
		if r.checked == len(r.ready) {
			return
		}
		start = r.checked
	}
	quietSince := now.Add(-r.interval).UnixNano()
	keep, pool := r.ready[:start], r.pool[:0]
	for _, s := range r.ready[start:] {
		if !round && s.lastEvents.Load() > quietSince {
			keep = append(keep, s)
			continue
		}
		if s.exec == onPool {
			pool = append(pool, s)
		} else {
			h.schedule(s)
		}
	}
	if round {
		// A round starts the interval, whether it sends subscribers that
		// waited for it or the first event after a quiet spell.
		r.adapt(now)
		r.last = now
	}
	clear(r.ready[len(keep):])
	r.ready, r.checked = keep, len(keep)
	h.runq.pushAll(pool)
	clear(pool)
	r.pool = pool[:0]
}

// Stretching the interval under sustained load (see rounds.adapt).
const (
	// stretchWrites is the fewest subscribers woken between two rounds
	// for the interval to stretch: below it, the writes a longer interval
	// saves cost less than the latency it adds.
	stretchWrites = 64
	// stretchEvents and shrinkEvents bound the events a write would carry
	// at the base interval: from stretchEvents on the interval doubles,
	// below shrinkEvents it halves. The gap between them keeps it from
	// swinging back and forth under a steady load.
	stretchEvents = 4
	shrinkEvents  = 2
)

// adapt sets the interval of the round starting now from the load since
// the last one. Each subscriber woken in the window got offers/wakes
// events in one write; scaled to the base interval, that says how busy
// subscribers are whatever the current interval. When writes would carry
// several events each even at the base interval, and to many subscribers,
// the hub is under sustained load: a longer interval then puts more events
// in each write, which cuts the hub's CPU time per delivery (writes cost
// the same whatever they carry), and adds little to latencies that
// queueing already sets. When the load falls, the interval comes back.
func (r *rounds) adapt(now time.Time) {
	offers, wakes := r.offers, r.wakes
	r.offers, r.wakes = 0, 0
	if r.max <= r.base || r.last.IsZero() || wakes == 0 {
		return
	}
	// events per write at the base interval: offers/wakes × base/window
	perWrite := float64(offers) * float64(r.base) / (float64(wakes) * float64(now.Sub(r.last)))
	switch {
	case wakes >= stretchWrites && perWrite >= stretchEvents:
		r.interval = min(2*r.interval, r.max)
	case wakes < stretchWrites/2 || perWrite < shrinkEvents:
		r.interval = max(r.interval/2, r.base)
	}
}

// dispatch offers one event to every subscriber that wants it.
func (h *Hub) dispatch(ev *Event) {
	h.cur.Store(ev.Pos)
	r := &h.rounds
	h.index.each(ev.Topics, func(s *subscriber) {
		if ev.Private && !s.authorized(ev.Topics) {
			return
		}
		r.offers++
		if s.offer(ev) {
			r.wakes++
			r.ready = append(r.ready, s)
		}
	})
	if ev.End {
		h.endTopics(ev)
	} else {
		h.ended.reopen(ev.Topics)
	}
	h.lastID.Store(&ev.ID)
}

// fellBehind handles events the log dropped before the dispatcher read
// them, the positions [from, to): publishers outran the dispatcher by more
// than the log retains. Live subscribers may have wanted them, so each goes
// back to reading the log at its cursor, finds the events gone, and is
// disconnected, to resume with Last-Event-ID: a gap is never silent.
func (h *Hub) fellBehind(from, to uint64) {
	h.logger.Warn("hub: the history dropped events before they were delivered; increase its size",
		"first", from, "last", to-1)
	h.index.subscribers(func(s *subscriber) { s.toLog() })
}

// waitDispatched waits until the dispatcher has dispatched the event at
// pos, or ctx ends, or the hub stops.
func (h *Hub) waitDispatched(ctx context.Context, pos uint64) {
	for h.cur.Load() < pos && h.broken.Load() == nil {
		h.passedMu.Lock()
		if h.passed == nil {
			h.passed = make(chan struct{})
		}
		ch := h.passed
		h.passedMu.Unlock()
		if h.cur.Load() >= pos {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		case <-h.ctx.Done():
			return
		}
	}
}

// passBatch wakes the waiters of waitDispatched.
func (h *Hub) passBatch() {
	h.passedMu.Lock()
	if h.passed != nil {
		close(h.passed)
		h.passed = nil
	}
	h.passedMu.Unlock()
}
