// Package logcore is the part of herald's durable stores that does not
// touch the disk: group commit, the bounds, the most recent events kept in
// memory, the waiters, and retention. A store supplies a Backend that
// writes and reads its files.
package logcore

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/herald-sse/herald/hub"
)

const (
	// TailSize is the number of recent events kept in memory: live
	// delivery and short catch-ups read them without the disk.
	TailSize = 8192
	// maxBatch bounds the events of one commit, so that a flood of
	// publishers still gets acknowledgements at a steady pace.
	maxBatch = 4096
	// trimChunk bounds the events one commit drops for retention.
	trimChunk = 4096
)

// Backend is the durable part of a store. Commit and Trim are never called
// concurrently (one leader at a time); Read and Lookup may run concurrently
// with them and with each other.
type Backend interface {
	// Commit writes the events of the batches in one durable commit, in
	// order from position next, skipping (with hub.ErrDuplicateID in
	// results) each batch whose events' IDs are retained, appended earlier
	// in the commit, or repeated within the batch. It sets Pos and Time
	// of the events it writes. Within the same commit it drops up to
	// trimLimit of the oldest events beyond the retention limits; it
	// returns the first position retained afterwards. An error means that
	// nothing was committed.
	Commit(batches [][]*hub.Event, first, next uint64, now time.Time, trimLimit int) (results []error, newFirst uint64, err error)
	// Beyond reports whether the oldest retained event is beyond the
	// retention limits, without writing anything.
	Beyond(first, next uint64, now time.Time) bool
	// Trim drops up to limit of the oldest events beyond the limits, in a
	// commit of its own, and returns the first position retained.
	Trim(first, next uint64, now time.Time, limit int) (uint64, error)
	// Read returns up to n events from position from, which is retained.
	Read(from uint64, n int) ([]*hub.Event, error)
	// Lookup returns the position of an event ID, if the backend has it.
	Lookup(id string) (uint64, bool, error)
	// Close releases the files.
	Close() error
}

// Log is a hub.Log over a Backend. It is safe for concurrent use.
//
// Appends are committed by a leader: an append that finds no commit under
// way commits, in its own goroutine, every append waiting (its own among
// them); appends that arrive meanwhile wait, and when the commit is done
// the first of them leads the next one. A lone publisher so commits with
// no handoff between goroutines, and concurrent publishers share commits,
// and so syncs (group commit).
type Log struct {
	b      Backend
	logger *slog.Logger

	qmu     sync.Mutex
	queue   []*appendReq // appends waiting for a commit
	leading bool         // a commit, or a retention trim, is under way
	idle    sync.Cond    // signalled when leading turns false with an empty queue
	closing bool
	quit    chan struct{} // closed by Close: the trimmer stops
	trimmed chan struct{} // closed when the trimmer has returned

	mu     sync.RWMutex
	first  uint64
	next   uint64
	tail   []*hub.Event // tail[p%TailSize] is the event at position p, for p in [from, next)
	from   uint64
	wake   chan struct{} // closed and replaced at each append
	closed bool
	failed error // a failed commit: appends are refused from then on
	once   sync.Once

	stats commitCounts
}

var _ hub.Log = (*Log)(nil)

type appendReq struct {
	evs  []*hub.Event
	done chan error // the outcome, or errLead: commit for the others
}

// errLead tells a waiting append that it leads the next commit.
var errLead = errors.New("logcore: lead the next commit")

// New returns a Log over b, which holds the positions [first, next); recent
// are its last events, in order (up to TailSize of them). It starts the
// goroutine that drops expired events while no one appends.
func New(b Backend, first, next uint64, recent []*hub.Event, logger *slog.Logger) *Log {
	l := &Log{
		b:       b,
		logger:  logger,
		quit:    make(chan struct{}),
		trimmed: make(chan struct{}),
		first:   first,
		next:    next,
		tail:    make([]*hub.Event, TailSize),
		from:    next,
		wake:    make(chan struct{}),
	}
	l.idle.L = &l.qmu
	for _, ev := range recent {
		l.tail[ev.Pos%TailSize] = ev
		l.from = min(l.from, ev.Pos)
	}
	go l.trimLoop()
	return l
}

// Append implements hub.Log. Once queued, an append waits for its outcome
// whatever its context says, so that an acknowledgement is never lost.
func (l *Log) Append(ctx context.Context, evs ...*hub.Event) error {
	if len(evs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.RLock()
	failed := l.failed
	l.mu.RUnlock()
	if failed != nil {
		return failed
	}
	r := &appendReq{evs: evs, done: make(chan error, 1)}
	l.qmu.Lock()
	if l.closing {
		l.qmu.Unlock()
		return hub.ErrClosed
	}
	l.queue = append(l.queue, r)
	if l.leading {
		l.qmu.Unlock()
		if err := <-r.done; err != errLead {
			return err
		}
		l.qmu.Lock() // leadership handed over, with the lock released in between
	} else {
		l.leading = true
	}
	l.lead()
	return <-r.done
}

// lead commits what is queued, then hands the lead to the first append
// that arrived meanwhile, if any. l.qmu is held, and released.
func (l *Log) lead() {
	n, batch := 0, make([]*appendReq, 0, len(l.queue))
	for len(l.queue) > 0 && n < maxBatch {
		batch = append(batch, l.queue[0])
		n += len(l.queue[0].evs)
		l.queue = l.queue[1:]
	}
	l.qmu.Unlock()
	l.commit(batch)
	l.handOver()
}

// handOver ends a lead: the first waiting append leads next, or no one.
func (l *Log) handOver() {
	l.qmu.Lock()
	if len(l.queue) > 0 {
		l.queue[0].done <- errLead
		l.qmu.Unlock()
		return
	}
	l.leading = false
	l.idle.Broadcast()
	l.qmu.Unlock()
}

func (l *Log) commit(batch []*appendReq) {
	l.mu.RLock()
	first, next, failed := l.first, l.next, l.failed
	l.mu.RUnlock()
	if failed != nil {
		for _, r := range batch {
			r.done <- failed
		}
		return
	}
	evs := make([][]*hub.Event, len(batch))
	added := 0
	for i, r := range batch {
		evs[i] = r.evs
		added += len(r.evs)
	}
	results, newFirst, err := l.b.Commit(evs, first, next, time.Now(), 2*added+256)
	l.stats.committed(added, err)
	if err != nil {
		l.logger.Error("the history's commit failed; it refuses appends until restarted", "error", err)
		l.mu.Lock()
		l.failed = err
		l.mu.Unlock()
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	l.mu.Lock()
	p := next
	for i, r := range batch {
		if results[i] != nil {
			continue
		}
		for _, ev := range r.evs {
			l.tail[ev.Pos%TailSize] = ev
			p = ev.Pos + 1
		}
	}
	grew := p != next
	l.next = p
	l.first = newFirst
	l.from = max(l.from, l.first, l.next-min(l.next, TailSize))
	if grew {
		close(l.wake)
		l.wake = make(chan struct{})
	}
	l.mu.Unlock()
	for i, r := range batch {
		r.done <- results[i]
	}
}

// trimLoop drops events beyond the retention limits once a second while
// no one appends, a chunk per commit, giving way as soon as an append
// arrives.
func (l *Log) trimLoop() {
	defer close(l.trimmed)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-l.quit:
			return
		}
		for l.trimChunk() {
		}
	}
}

// trimChunk drops one chunk, taking the lead so that no commit runs at the
// same time; it reports whether it may go on.
func (l *Log) trimChunk() bool {
	l.qmu.Lock()
	if l.leading || len(l.queue) > 0 || l.closing {
		l.qmu.Unlock()
		return false
	}
	l.leading = true
	l.qmu.Unlock()
	more := false
	l.mu.RLock()
	first, next, failed := l.first, l.next, l.failed
	l.mu.RUnlock()
	if failed == nil && first != next && l.b.Beyond(first, next, time.Now()) {
		newFirst, err := l.b.Trim(first, next, time.Now(), trimChunk)
		if err != nil {
			l.logger.Error("dropping expired events from the history failed", "error", err)
		} else {
			l.mu.Lock()
			l.first = newFirst
			l.from = max(l.from, l.first)
			l.mu.Unlock()
			more = newFirst != first
		}
	}
	l.handOver()
	return more
}

// Read implements hub.Log.
func (l *Log) Read(ctx context.Context, from uint64, limit int) ([]*hub.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return nil, hub.ErrClosed
	}
	from = max(from, l.first)
	next, tailFrom := l.next, l.from
	if from >= next || limit <= 0 {
		l.mu.RUnlock()
		return nil, nil
	}
	n := int(min(next-from, uint64(limit)))
	if from >= tailFrom {
		out := make([]*hub.Event, n)
		for i := range out {
			out[i] = l.tail[(from+uint64(i))%TailSize]
		}
		l.mu.RUnlock()
		return out, nil
	}
	l.mu.RUnlock()
	return l.b.Read(from, n)
}

// Lookup implements hub.Log.
func (l *Log) Lookup(ctx context.Context, id string) (uint64, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	l.mu.RLock()
	closed := l.closed
	l.mu.RUnlock()
	if closed {
		return 0, false, hub.ErrClosed
	}
	p, ok, err := l.b.Lookup(id)
	if err != nil || !ok {
		return 0, false, err
	}
	l.mu.RLock()
	retained := p >= l.first
	l.mu.RUnlock()
	return p, retained, nil
}

// Bounds implements hub.Log.
func (l *Log) Bounds(ctx context.Context) (first, next uint64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return 0, 0, hub.ErrClosed
	}
	return l.first, l.next, nil
}

// Wait implements hub.Log.
func (l *Log) Wait(ctx context.Context, after uint64) error {
	for {
		l.mu.RLock()
		closed, next, wake := l.closed, l.next, l.wake
		l.mu.RUnlock()
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

// Close waits for the commit under way, refuses the appends that come
// after, and closes the backend. It is idempotent.
func (l *Log) Close() error {
	var err error
	l.once.Do(func() {
		close(l.quit)
		<-l.trimmed
		l.qmu.Lock()
		l.closing = true
		for l.leading || len(l.queue) > 0 {
			l.idle.Wait()
		}
		l.qmu.Unlock()
		l.mu.Lock()
		l.closed = true
		close(l.wake)
		l.mu.Unlock()
		err = l.b.Close()
	})
	return err
}
