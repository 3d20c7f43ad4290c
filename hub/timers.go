package hub

import (
	"container/heap"
	"sync"
	"time"
)

// timers holds every subscriber in a heap ordered by the next time it needs
// attention: its next heartbeat (the heartbeat interval after its last
// write) or the end of its connection, whichever comes first. One goroutine
// serves it, so subscribers need no timer of their own, and a write moves
// nothing: an entry found early is put back at its new time.
type timers struct {
	mu   sync.Mutex
	heap subscriberHeap
	wake chan struct{} // a new entry may come first
}

func newTimers() *timers {
	return &timers{wake: make(chan struct{}, 1)}
}

// add starts watching s, which must have its deadline set.
func (t *timers) add(s *subscriber, due time.Time) {
	t.mu.Lock()
	s.due = due
	heap.Push(&t.heap, s)
	first := t.heap[0] == s
	t.mu.Unlock()
	if first {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// remove stops watching s, if it is watched: a finished subscriber leaves
// at once rather than at its next due time, up to a heartbeat interval
// later (or a minute, without heartbeat or deadline).
func (t *timers) remove(s *subscriber) {
	t.mu.Lock()
	if s.slot >= 0 && s.slot < len(t.heap) && t.heap[s.slot] == s {
		heap.Remove(&t.heap, s.slot)
	}
	t.mu.Unlock()
}

// timerLoop sends heartbeats and ends connections at their deadline.
func (h *Hub) timerLoop() {
	defer h.bg.Done()
	t := h.timers
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var beats, stops []*subscriber
	for {
		now := time.Now()
		beats, stops = beats[:0], stops[:0]
		t.mu.Lock()
		for len(t.heap) > 0 && !t.heap[0].due.After(now) {
			s := t.heap[0]
			next, beat, stop := h.check(s, now)
			switch {
			case stop:
				heap.Pop(&t.heap)
				stops = append(stops, s)
			case next.IsZero():
				heap.Pop(&t.heap)
			default:
				s.due = next
				heap.Fix(&t.heap, 0)
			}
			if beat {
				beats = append(beats, s)
			}
		}
		wait := time.Hour
		if len(t.heap) > 0 {
			wait = t.heap[0].due.Sub(now)
		}
		t.mu.Unlock()
		for _, s := range stops {
			s.stop(s.dlReason)
		}
		for _, s := range beats {
			s.heartbeatDue()
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-t.wake:
		case <-h.ctx.Done():
			return
		}
	}
}

// check decides what a subscriber due at now needs: a heartbeat, its end,
// or nothing yet. It returns the next time to look at it, zero when never
// (it has finished).
func (h *Hub) check(s *subscriber, now time.Time) (next time.Time, beat, stop bool) {
	select {
	case <-s.done:
		return time.Time{}, false, false
	default:
	}
	if !s.deadline.IsZero() && !now.Before(s.deadline) {
		return time.Time{}, false, true
	}
	hb := h.cfg.Heartbeat
	if hb > 0 {
		quiet := time.Unix(0, s.lastWrite.Load()).Add(hb)
		if !now.Before(quiet) {
			beat, quiet = true, now.Add(hb)
		}
		next = quiet
	}
	if !s.deadline.IsZero() && (next.IsZero() || s.deadline.Before(next)) {
		next = s.deadline
	}
	if next.IsZero() {
		// Neither heartbeat nor deadline: look again once in a while, only
		// to drop the entry once the subscriber has finished.
		next = now.Add(time.Minute)
	}
	return next, beat, false
}

// subscriberHeap orders subscribers by due time.
type subscriberHeap []*subscriber

func (q subscriberHeap) Len() int           { return len(q) }
func (q subscriberHeap) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q subscriberHeap) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].slot, q[j].slot = i, j
}
func (q *subscriberHeap) Push(x any) {
	s := x.(*subscriber)
	s.slot = len(*q)
	*q = append(*q, s)
}
func (q *subscriberHeap) Pop() any {
	old := *q
	s := old[len(old)-1]
	s.slot = -1
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return s
}
