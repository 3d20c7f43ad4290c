package hub

import "context"

// Log is the hub's history: one totally ordered sequence of events, which
// both live delivery and replay read, so that a subscriber resuming with
// Last-Event-ID gets every event after its own, once, with no gap.
//
// Positions start at 1 and increase by one with each appended event: they
// are dense, with no gap, so that a reader that is handed an event at a
// position other than the one it asked for knows that it missed the ones
// between (the hub disconnects the subscribers that did, and they resume
// with Last-Event-ID). The log retains the events of positions [first,
// next); retention drops events from the front only, and neither bound
// ever moves back.
//
// Positions are the log's own, never shown to clients: event IDs are what
// a client resumes with (Lookup maps one to its position). A log shared by
// several hubs (a cluster engine) may so number the same event differently
// on each, as long as each numbering is dense and in the shared order.
//
// # Epochs
//
// An engine may lose its history behind the log's back: a Redis restart
// that kept nothing on disk, an evicted key. A log over such an engine
// keeps an epoch (a generation stored with the history) and notices when
// it changes. Its positions then continue from where they were, and what
// was lost reads as dropped from the front: first moves up to next, so
// that a waiting reader is woken by the events of the new epoch rather
// than waiting for positions that will never come, and a client resuming
// from a lost ID starts at the first retained event, as after any
// retention. hubtest's Lose option checks this.
//
// # Speed
//
// Wait, Bounds, and Read of the recent events (those a live subscriber
// needs) are on the hub's delivery path: they answer from memory, with no
// round trip to a disk or a server, in microseconds. Read of older events
// (a resumption from far back) may do I/O. The hub calls Read where it
// writes to subscribers, on a pool of GOMAXPROCS workers that every
// subscriber shares, unless the log implements RecentReader: a log that
// does I/O in Read implements it, so that the hub asks it first whether a
// read answers from memory, and makes the reads that do not on a few log
// readers of its own, off the workers, whose writes to everyone else a
// round trip would otherwise hold up.
//
// Implementations are safe for concurrent use. After Close every method
// returns ErrClosed. The hubtest package holds the behavioural suite that
// every implementation must pass.
type Log interface {
	// Append appends the events in order and returns once they are
	// durable: an acknowledged event survives a crash of the process (or,
	// for a log that keeps nothing on disk, for as long as it runs). It
	// sets each event's Pos and Time. It fails with ErrDuplicateID, having
	// appended none of them, when an event's ID is already retained or
	// appears twice among evs. It prepares the events (Event.Prepare)
	// that are not prepared yet. The caller must not change the events
	// afterwards.
	//
	// When its storage fails (a full disk, an I/O error), Append returns
	// an error wrapping ErrUnavailable, promptly, for that append and for
	// every one after it until the log can store events again; it never
	// hangs on the fault, and never panics. Such events were not
	// acknowledged, but their outcome is unknown, as that of an append
	// interrupted by a crash: a commit may have reached the disk before
	// it failed, and the log may hold them once it recovers, after the
	// events acknowledged before them. An acknowledged event is never lost
	// or reordered by a fault.
	Append(ctx context.Context, evs ...*Event) error

	// Read returns up to limit events in order, starting at position from
	// or, when from is no longer retained, at the first retained event.
	// It returns no events when from is at or past the end. An event that
	// the log hands to more than one Read (one it keeps in memory) is
	// prepared (Event.Prepare), so that every subscriber it reaches shares
	// one encoding; an event the log builds for this Read alone, say from
	// a file, may be unprepared, and is then encoded by its one reader if
	// it wants it. The caller must not change the events.
	Read(ctx context.Context, from uint64, limit int) ([]*Event, error)

	// Lookup returns the position of the retained event with the given
	// ID. It costs the same however long the history: a seek, not a scan.
	Lookup(ctx context.Context, id string) (pos uint64, ok bool, err error)

	// Bounds returns the position of the first retained event and the
	// position the next appended event will get. first == next when the
	// log retains nothing.
	Bounds(ctx context.Context) (first, next uint64, err error)

	// Wait blocks until the log's next position is past after, that is
	// until an event at position after or later has been appended, or ctx
	// ends.
	Wait(ctx context.Context, after uint64) error

	// Close releases the log. It is idempotent.
	Close() error
}

// HealthChecker is a Log that reports whether it can store events. The
// hub's Ready asks it, so that a load balancer sends publishers elsewhere
// while a store's disk is full. A Log without it is taken to be healthy
// whenever its Bounds can be read.
type HealthChecker interface {
	// Healthy returns nil while the log takes appends, and otherwise why
	// not: an error wrapping ErrUnavailable, saying whether the log
	// retries on its own or needs a restart once the fault is fixed, or
	// ErrClosed after Close. It does no I/O and does not block.
	Healthy() error
}

// RecentReader is a Log that tells which reads answer from memory. The hub
// catches a subscriber up with ReadRecent where it writes to subscribers,
// and hands the reads for which it reports false to a small, bounded set
// of log readers that call Read and give the events back to the
// subscriber's writer. A Log whose Read may do I/O should implement it;
// one without it has every Read made where the hub writes.
type RecentReader interface {
	// ReadRecent returns what Read(ctx, from, limit) would return, when it
	// can answer from memory, and ok true; it never does I/O and never
	// blocks on one. It reports ok false when answering would need I/O
	// (from is older than what the log keeps in memory), and after Close,
	// so that Read reports ErrClosed.
	ReadRecent(from uint64, limit int) (evs []*Event, ok bool)
}
