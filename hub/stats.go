package hub

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a hub's counters, for monitoring.
type Stats struct {
	// Subscribers is the number of subscriptions being served.
	Subscribers int
	// SlowDropped counts the subscribers the hub has disconnected since it
	// started because they did not keep up: a write to one did not finish
	// within the dispatch timeout (it took its bytes too slowly, or none),
	// or it fell so far behind that the history dropped events it had not
	// received. Clients that went away, connections that reached their
	// lifetime and subscriptions closed by a shutdown are not counted.
	SlowDropped uint64
}

// Stats returns the hub's counters. It is safe for concurrent use and
// cheap enough to call on every scrape of a metrics endpoint.
func (h *Hub) Stats() Stats {
	return Stats{Subscribers: h.index.size(), SlowDropped: h.drops.total.Load()}
}

// dropLogEvery bounds how often the hub logs the subscribers it dropped for
// not keeping up: a fleet of stuck clients is dropped within one dispatch
// timeout, and a line for each would flood the log when it matters most.
const dropLogEvery = time.Second

// slowDrops counts the subscribers dropped for not keeping up (stalled or
// lost) and logs them, at most once per dropLogEvery, with how many went
// since the last line and why. It is safe for concurrent use.
type slowDrops struct {
	logger  *slog.Logger
	timeout time.Duration // the dispatch timeout, to say why
	total   atomic.Uint64

	mu      sync.Mutex
	stalled uint64      // since the last line
	lost    uint64      // since the last line
	last    time.Time   // when the last line was logged
	flush   *time.Timer // the next line, when one is scheduled
	stopped bool        // the hub has shut down: no more lines are scheduled
}

// add counts a subscriber dropped for reason, stalled or lost, and logs
// it now or with the next line.
func (d *slowDrops) add(reason closeReason) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.total.Add(1)
	if reason == stalled {
		d.stalled++
	} else {
		d.lost++
	}
	if d.flush != nil || d.stopped {
		return
	}
	wait := time.Until(d.last.Add(dropLogEvery))
	if wait <= 0 {
		d.logLocked()
		return
	}
	d.flush = time.AfterFunc(wait, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.flush = nil
		d.logLocked()
	})
}

// stop logs what is pending and schedules no more lines.
func (d *slowDrops) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	if d.flush != nil {
		d.flush.Stop()
		d.flush = nil
	}
	d.logLocked()
}

// logLocked logs the drops since the last line, if any. d.mu is held.
func (d *slowDrops) logLocked() {
	n := d.stalled + d.lost
	if n == 0 {
		return
	}
	var why []string
	if d.stalled > 0 {
		why = append(why, fmt.Sprintf("stalled: a write did not finish in %v", d.timeout))
	}
	if d.lost > 0 {
		why = append(why, "fell behind the history")
	}
	if len(why) == 2 {
		why[0] += fmt.Sprintf(" (%d)", d.stalled)
		why[1] += fmt.Sprintf(" (%d)", d.lost)
	}
	d.logger.Warn("hub: dropped slow subscribers", "dropped", n, "reason", strings.Join(why, "; "), "total", d.total.Load())
	d.stalled, d.lost = 0, 0
	d.last = time.Now()
}
