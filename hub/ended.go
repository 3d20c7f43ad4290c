package hub

import (
	"context"
	"fmt"
	"sync"
)

// endedTopics remembers the topics whose stream a publisher ended, with
// the position of the ending event, up to a bound past which the oldest
// are forgotten. Only the dispatcher changes it; subscribe reads it.
type endedTopics struct {
	mu    sync.RWMutex
	max   int
	pos   map[string]uint64
	order []string // in the order they ended, oldest first; may hold stale names
}

func newEndedTopics(max int) *endedTopics {
	return &endedTopics{max: max, pos: make(map[string]uint64)}
}

func (e *endedTopics) end(topics []string, pos uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range topics {
		e.pos[t] = pos
		e.order = append(e.order, t)
	}
	for len(e.pos) > e.max && len(e.order) > 0 {
		delete(e.pos, e.order[0])
		e.order = e.order[1:]
	}
	if len(e.order) > 2*e.max {
		e.compact()
	}
}

// compact drops from order the names no longer ended.
func (e *endedTopics) compact() {
	kept := make([]string, 0, len(e.pos))
	seen := make(map[string]bool, len(e.pos))
	for i := len(e.order) - 1; i >= 0; i-- {
		t := e.order[i]
		if _, ok := e.pos[t]; ok && !seen[t] {
			seen[t] = true
			kept = append(kept, t)
		}
	}
	for i, j := 0, len(kept)-1; i < j; i, j = i+1, j-1 {
		kept[i], kept[j] = kept[j], kept[i]
	}
	e.order = kept
}

func (e *endedTopics) reopen(topics []string) {
	e.mu.RLock()
	found := false
	for _, t := range topics {
		if _, ok := e.pos[t]; ok {
			found = true
			break
		}
	}
	e.mu.RUnlock()
	if !found {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range topics {
		delete(e.pos, t)
	}
}

// endOf returns the position at which the subscription to selectors ended:
// when every selector is exact and its topic has ended, the position of
// the last ending among them; otherwise 0.
func (e *endedTopics) endOf(selectors []*selector) uint64 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var last uint64
	for _, sel := range selectors {
		if !sel.exact() {
			return 0
		}
		pos, ok := e.pos[sel.raw]
		if !ok {
			return 0
		}
		last = max(last, pos)
	}
	return last
}

// endTopics applies an ending event: the dispatcher has offered it to its
// subscribers; those whose selectors have all ended now close once they
// have delivered it.
func (h *Hub) endTopics(ev *Event) {
	h.ended.end(ev.Topics, ev.Pos)
	var done []*subscriber
	h.index.each(ev.Topics, func(s *subscriber) {
		if h.ended.endOf(s.sels) != 0 {
			done = append(done, s)
		}
	})
	for _, s := range done {
		s.endAfter(ev.Pos)
	}
}

// recallEnded rebuilds the ended topics from the most recent history, up
// to as many events as it remembers topics, so that a hub restarted on a
// durable log still answers 204 for them.
func (h *Hub) recallEnded(first, next uint64) error {
	ctx := context.Background()
	for p := max(first, next-min(next, uint64(h.cfg.MaxEndedTopics))); p < next; {
		evs, err := h.log.Read(ctx, p, 1024)
		if err != nil {
			return fmt.Errorf("hub: read the log for ended topics: %w", err)
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			if ev.End {
				h.ended.end(ev.Topics, ev.Pos)
			} else {
				h.ended.reopen(ev.Topics)
			}
		}
		p = evs[len(evs)-1].Pos + 1
	}
	return nil
}
