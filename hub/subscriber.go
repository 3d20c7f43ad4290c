package hub

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Delivery to one subscriber.
//
// A subscriber is in one of two modes. Live, the dispatcher appends each
// event it wants to a small queue of pointers to the shared, already
// encoded events. Catching up, the dispatcher only wakes it, and its runner
// reads the log from the subscriber's cursor (next), filtering by topic and
// authorization. Every subscriber starts catching up, from the position its
// Last-Event-ID asks for or from the log's end; it turns live once its
// cursor passes the event the dispatcher is delivering. A live subscriber
// whose queue fills up, because it reads slower than events come, falls
// back to catching up: its memory stays bounded, and it loses nothing until
// the log drops an event it has not read, when it is disconnected (and
// resumes with Last-Event-ID).
//
// The switch to live is exact: the dispatcher stores the position it is
// delivering (Hub.cur) before it offers the event to anyone, and offers
// under the subscriber's lock, so a runner that sees, under that lock, its
// cursor past Hub.cur knows that every later event will be queued for it.
// Events queued that the cursor has already passed are skipped, so nothing
// is delivered twice.
//
// One runner at a time holds a subscriber: state goes from idle to busy
// when work arrives and back to idle, under the lock, only when there is
// none. The runner is a pool worker for connections it can write without
// blocking, a goroutine of its own while a write must wait, and the
// request's handler for HTTP/2 streams (see executor). A catch-up read
// that needs I/O passes the subscriber from its runner to a log reader and
// back (see logread.go).

// maxQueue bounds the events queued for a live subscriber: past it, the
// subscriber catches up from the log instead, so that a slow reader costs
// a cursor, not a buffer that grows with the publish rate.
const maxQueue = 1024

// Bounds on one write to a subscriber: the events of a write share one
// writev, whose vector holds at most 1024 buffers on Linux.
const (
	maxWriteEvents = 512
	maxWriteBytes  = 256 << 10
)

// heartbeat is the comment sent to an idle subscriber.
var heartbeat = []byte(":\n")

type mode uint8

const (
	catchingUp mode = iota
	live
)

type closeReason uint8

const (
	open     closeReason = iota
	gone                 // the client went away: a write failed
	hungUp               // the client closed the connection
	stalled              // a write did not finish within the dispatch timeout
	lifetime             // the connection reached its maximum lifetime
	expired              // the subscriber's token expired
	ended                // every topic of the subscription ended
	lost                 // the log dropped events the subscriber had not read
	shutdown             // the hub is shutting down
	numReasons
)

func (r closeReason) String() string {
	return [...]string{"open", "client gone", "client closed the connection", "stalled", "maximum lifetime", "token expired", "topics ended", "fell behind the history", "shutdown"}[r]
}

// executor says who runs a subscriber.
type executor uint8

const (
	onPool    executor = iota // a pool worker; a write that would block moves to a goroutine
	onSpawn                   // a goroutine started for the run
	onHandler                 // the request's handler, woken through wake
)

type subscriber struct {
	h      *Hub
	id     string   // urn:uuid:…
	topics []string // the selectors, as requested
	claims *claims  // nil for an anonymous subscriber
	sink   sink
	exec   executor
	wake   chan struct{} // onHandler: signals work
	done   chan struct{} // closed when the subscriber has finished

	members []*membership // its entries in the index, guarded by the index's lock
	watched uint64        // its token in the hub's watcher; 0: not watched there

	// sels are the selectors compiled, those of its groups in the index:
	// set when it joins the index, read-only after.
	sels []*selector

	// Guarded by the timers' lock.
	due      time.Time
	deadline time.Time   // when the connection must end; zero: never
	dlReason closeReason // lifetime or expired
	slot     int         // index in the timers' heap

	lastWrite  atomic.Int64 // time of the last write, in Unix nanoseconds
	lastEvents atomic.Int64 // time of the last write of events, in Unix nanoseconds (see rounds)

	// For the stats and the log; set before the runner starts.
	remote    string      // the client's address
	opened    time.Time   // when the subscription came in
	transport transport   // how its stream is written
	counts    *writeShard // the hub's counts of writes it adds to
	// Only its runner touches these.
	sent      uint64 // events written
	sentBytes uint64 // bytes written

	mu      sync.Mutex
	busy    bool // a runner holds or will hold the subscriber
	mode    mode
	queue   []*Event // live: events to deliver, in order
	spare   []*Event // the queue's other buffer
	next    uint64   // the next position to deliver
	offered uint64   // the last position offered, to offer each event once
	beat    bool     // a heartbeat is due
	endAt   uint64   // close once this position is delivered; 0: never
	reason  closeReason
	read    *logRead // a log reader's answer, for the runner to write
}

// authorized reports whether the subscriber may receive a private update
// about these topics.
func (s *subscriber) authorized(topics []string) bool {
	return s.claims != nil && s.h.match.matchAny(s.claims.Subscribe, topics)
}

// wants reports whether the subscriber receives ev: one of its selectors
// matches one of the event's topics, and the event is public or allowed.
// The subscriber has joined the index.
func (s *subscriber) wants(ev *Event) bool {
	return matchAny(s.sels, ev.Topics) && (!ev.Private || s.authorized(ev.Topics))
}

// offer hands the subscriber an event the dispatcher found it wants. Only
// the dispatcher calls it, in log order. When it reports true, the
// subscriber turned busy and the caller must schedule it.
func (s *subscriber) offer(ev *Event) (schedule bool) {
	s.mu.Lock()
	if s.reason != open || ev.Pos == s.offered {
		s.mu.Unlock()
		return false
	}
	s.offered = ev.Pos
	if s.mode == live {
		if len(s.queue) < maxQueue {
			s.queue = append(s.queue, ev)
		} else {
			s.mode = catchingUp // too slow: read from the log from now on
			clear(s.queue)
			s.queue = s.queue[:0]
		}
	}
	run := s.scheduleLocked()
	s.mu.Unlock()
	return run
}

// toLog makes a live subscriber read from the log at its cursor.
func (s *subscriber) toLog() {
	s.change(func() {
		if s.reason == open && s.mode == live {
			s.mode = catchingUp
			clear(s.queue)
			s.queue = s.queue[:0]
		}
	})
}

// heartbeatDue asks for a heartbeat.
func (s *subscriber) heartbeatDue() {
	s.change(func() { s.beat = true })
}

// stop asks the subscriber to close, for reason. The runner closes it.
func (s *subscriber) stop(reason closeReason) {
	s.change(func() {
		if s.reason == open {
			s.reason = reason
		}
	})
}

// abort cuts the subscriber's connection at once, failing any write in
// progress, if it has one yet.
func (s *subscriber) abort() {
	s.mu.Lock()
	snk := s.sink
	s.mu.Unlock()
	if snk != nil {
		snk.abort()
	}
}

// endAfter closes the subscriber once it has delivered the event at pos.
func (s *subscriber) endAfter(pos uint64) {
	s.change(func() {
		if s.endAt == 0 || pos < s.endAt {
			s.endAt = pos
		}
		if s.next > s.endAt && s.reason == open {
			s.reason = ended // delivered already
		}
	})
}

// change applies f under the lock, then starts a runner if the subscriber
// was idle, so that it acts on the change.
func (s *subscriber) change(f func()) {
	s.mu.Lock()
	f()
	run := s.scheduleLocked()
	s.mu.Unlock()
	if run {
		s.h.schedule(s)
	}
}

// scheduleLocked marks the subscriber busy and reports whether a runner
// must be started. s.mu is held.
func (s *subscriber) scheduleLocked() bool {
	if s.busy {
		return false
	}
	s.busy = true
	return true
}

// schedule starts a runner for a subscriber that turned busy.
func (h *Hub) schedule(s *subscriber) {
	switch s.exec {
	case onPool:
		h.runq.push(s)
	case onSpawn:
		go s.run(true, nil)
	case onHandler:
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// batch is one write's worth of work.
type batch struct {
	bufs      [][]byte
	size      int      // the bytes of bufs
	upto      uint64   // the cursor after the write
	events    []*Event // the queue buffer the write came from, to reuse
	heartbeat bool     // the write is a heartbeat alone
}

// run delivers until there is nothing left to do, then leaves the
// subscriber idle, or closes it. A pool worker passes block false: a write
// that would block then finishes in a goroutine of its own, which goes on
// running the subscriber. scratch, when not nil, is a buffer the caller
// lends for the write vector.
func (s *subscriber) run(block bool, scratch *[][]byte) {
	if scratch == nil {
		scratch = new([][]byte)
	}
	for {
		b, reason, stop := s.collect((*scratch)[:0])
		switch {
		case reason != open:
			s.finish(reason)
			return
		case stop:
			return
		}
		*scratch = b.bufs
		if len(b.bufs) == 0 {
			if s.written(b, nil) {
				return
			}
			continue
		}
		sent, err := s.sink.send(b.bufs)
		if err == nil && !sent {
			if !block {
				go func() {
					if !s.written(b, s.sink.finish()) {
						s.run(true, nil)
					}
				}()
				return
			}
			err = s.sink.finish()
		}
		if s.written(b, err) {
			return
		}
	}
}

// collect returns the next write, or the reason to close, or stop when
// the runner has nothing to do: there is no work (and it marked the
// subscriber idle), or it handed the subscriber to a log reader.
func (s *subscriber) collect(bufs [][]byte) (b batch, reason closeReason, stop bool) {
	s.mu.Lock()
	if s.reason != open {
		defer s.mu.Unlock()
		return b, s.reason, false
	}
	if s.mode == catchingUp {
		from, rd := s.next, s.read
		s.read = nil
		s.mu.Unlock()
		return s.collectCatchUp(from, rd, bufs)
	}
	if s.idleLocked() {
		s.mu.Unlock()
		return b, open, true
	}
	evs, next := s.queue, s.next
	if len(evs) == 0 { // a heartbeat alone
		s.beat = false
		s.mu.Unlock()
		return batch{bufs: append(bufs, heartbeat), size: len(heartbeat), upto: next, heartbeat: true}, open, false
	}
	s.queue, s.spare = s.spare[:0], nil
	s.beat = false // events keep the connection alive as well
	s.mu.Unlock()

	b = batch{bufs: bufs, upto: next, events: evs}
	size := 0
	for i, ev := range evs {
		if ev.Pos < next {
			continue // delivered while catching up
		}
		if len(b.bufs) == maxWriteEvents || size >= maxWriteBytes {
			s.requeue(evs[i:])
			break
		}
		w := wire(ev)
		b.bufs = append(b.bufs, w)
		size += len(w)
		b.upto = ev.Pos + 1
	}
	b.size = size
	return b, open, false
}

// requeue puts back at the front of the queue the events a write had no
// room for.
func (s *subscriber) requeue(evs []*Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == live {
		s.queue = append(append(make([]*Event, 0, len(evs)+len(s.queue)), evs...), s.queue...)
	}
}

// catchUpBatch is the number of events read from the log at a time.
const catchUpBatch = 256

// collectCatchUp reads the log from the cursor for the next write. When the
// cursor has reached the end of the log it turns the subscriber live, or,
// if the dispatcher has meanwhile passed the cursor, returns an empty batch
// so that the runner reads again. The events come from rd, a log reader's
// answer, or else from the log when it answers from memory; otherwise it
// hands the subscriber to a log reader and reports stop.
func (s *subscriber) collectCatchUp(from uint64, rd *logRead, bufs [][]byte) (batch, closeReason, bool) {
	h := s.h
	var evs []*Event
	var err error
	if rd != nil && rd.from == from {
		evs, err = rd.evs, rd.err
	} else {
		h.stats.replayReads.Add(1)
		var ok bool
		if evs, ok, err = h.readNow(from); !ok {
			h.readq.push(s)
			return batch{}, open, true
		}
	}
	if err != nil {
		if h.ctx.Err() == nil {
			h.storeFailed(h.ctx, opRead, err)
			h.logger.Error("hub: reading the log for a subscriber failed", "subscriber", s.id, "error", err)
		}
		return batch{}, gone, false
	}
	if len(evs) > 0 && evs[0].Pos != from {
		return batch{}, lost, false
	}
	if len(evs) == 0 {
		first, _, err := h.log.Bounds(h.ctx)
		if err != nil {
			h.storeFailed(h.ctx, opBounds, err)
		}
		if err != nil || from < first {
			return batch{}, lost, false
		}
		s.mu.Lock()
		if s.next > h.cur.Load() {
			// The dispatcher has not reached the cursor, and offers under
			// this lock: it will queue every event from here on.
			s.mode = live
		}
		s.mu.Unlock()
		return batch{upto: from}, open, false
	}
	b := batch{bufs: bufs, upto: from}
	size := 0
	for _, ev := range evs {
		if len(b.bufs) == maxWriteEvents || size >= maxWriteBytes {
			break
		}
		b.upto = ev.Pos + 1
		if s.wants(ev) {
			w := wire(ev)
			b.bufs = append(b.bufs, w)
			size += len(w)
		}
	}
	b.size = size
	return b, open, false
}

// written records the end of a write: it moves the cursor, or, when the
// write failed, marks the subscriber stalled if it timed out, gone
// otherwise. When nothing is left to do, it leaves the subscriber idle
// (idleLocked), sparing the runner a collect that would find nothing, and
// reports true: the runner must stop.
func (s *subscriber) written(b batch, err error) (idle bool) {
	if err == nil && len(b.bufs) > 0 {
		now := time.Now().UnixNano()
		s.lastWrite.Store(now)
		s.sentBytes += uint64(b.size)
		s.counts.bytes.Add(uint64(b.size))
		if !b.heartbeat {
			s.lastEvents.Store(now)
			s.sent += uint64(len(b.bufs))
			s.counts.events.Add(uint64(len(b.bufs)))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.reason == open {
			s.reason = gone
			if timedOut(err) {
				s.reason = stalled
			}
		}
		return
	}
	s.next = max(s.next, b.upto)
	if s.endAt != 0 && s.next > s.endAt && s.reason == open {
		s.reason = ended
	}
	if b.events != nil && s.spare == nil && cap(b.events) <= 4*maxWriteEvents {
		clear(b.events)
		s.spare = b.events[:0]
	}
	return s.idleLocked()
}

// idleLocked leaves the subscriber idle, and reports true, when it is open
// and has nothing to write: no event queued, no heartbeat due, not
// catching up. A runner then stops; the next offer or heartbeat schedules
// one. s.mu is held.
func (s *subscriber) idleLocked() bool {
	if s.reason != open || s.mode != live || len(s.queue) > 0 || s.beat {
		return false
	}
	s.busy = false
	return true
}

// finish closes the subscriber: it leaves the index, ends the response and
// releases the connection. Only its runner calls it, once.
func (s *subscriber) finish(reason closeReason) {
	h := s.h
	h.index.remove(s)
	h.depart(s)
	h.timers.remove(s)
	h.watcher.unwatch(s)
	var final []byte
	switch reason {
	case shutdown:
		// Spread the fleet's reconnections over a few seconds.
		final = retryHint()
	case gone, hungUp, stalled:
		s.sink.abort()
	}
	s.sink.close(final)
	s.mu.Lock()
	s.queue, s.spare = nil, nil
	s.mu.Unlock()
	h.stats.closed[reason].Add(1)
	h.stats.closedOn[s.transport].Add(1)
	if h.logger.Enabled(h.ctx, levelDebug) {
		h.logger.LogAttrs(h.ctx, levelDebug, "hub: subscriber left", slog.String("subscriber", s.id),
			slog.String("remote", s.remote), slog.String("reason", reason.String()),
			slog.Duration("duration", time.Since(s.opened)), slog.Uint64("events", s.sent), slog.Uint64("bytes", s.sentBytes))
	}
	if reason == stalled || reason == lost {
		h.drops.add(reason)
	}
	h.subscriptionEvents(s)
	close(s.done)
	h.live.done()
}

// timedOut reports whether a write failed for its deadline: the client did
// not take the write's bytes within the dispatch timeout.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
