package hub

// Catch-up reads that need I/O.
//
// A subscriber catching up reads the log where it is written to: mostly
// on the pool's workers, which every subscriber shares. A read there must
// not wait for a disk or a server, or every subscriber queued behind it
// waits too. So when the log is a RecentReader, the runner asks it for the
// events in memory (readNow), and when they are not, hands the subscriber
// to one of a few log readers: a reader calls Log.Read, stores the answer
// with the subscriber, and schedules it again, and its runner builds the
// write from those events as from any others (collectCatchUp). The reader
// holds the subscriber meanwhile, as a runner would: it stays busy, so
// nothing else runs it, and its cursor does not move.

// minLogReaders is the fewest log readers a hub runs; it runs
// max(minLogReaders, GOMAXPROCS). A reader mostly waits for a round trip,
// not for a CPU, so there are more of them than cores on a small machine,
// to overlap the waits of several resuming subscribers. The bound keeps a
// reconnection storm from sending thousands of reads to the engine at once
// (each would hold one of its connections, which the appends and the
// dispatcher need too): the reads beyond it wait in the readers' queue,
// one pointer each.
const minLogReaders = 4

// logRead is a log reader's answer to a subscriber's read.
type logRead struct {
	from uint64 // the cursor it read at
	evs  []*Event
	err  error
}

// readNow reads the log at from for a catch-up, unless answering needs
// I/O, when it reports false. A log that is not a RecentReader is read in
// place.
func (h *Hub) readNow(from uint64) (evs []*Event, ok bool, err error) {
	if h.recent == nil {
		evs, err = h.log.Read(h.ctx, from, catchUpBatch)
		return evs, true, err
	}
	evs, ok = h.recent.ReadRecent(from, catchUpBatch)
	return evs, ok, nil
}

// logReader makes the reads handed to it until the hub stops.
func (h *Hub) logReader() {
	defer h.readers.Done()
	for {
		s, ok := h.readq.pop()
		if !ok {
			return
		}
		s.mu.Lock()
		from, stopped := s.next, s.reason != open
		s.mu.Unlock()
		var rd *logRead
		if !stopped { // a closing subscriber does not need the events
			evs, err := h.log.Read(h.ctx, from, catchUpBatch)
			rd = &logRead{from: from, evs: evs, err: err}
		}
		s.mu.Lock()
		s.read = rd
		s.mu.Unlock()
		h.schedule(s)
	}
}
