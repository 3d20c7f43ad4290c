// Package logcore is the part of herald's durable stores that does not
// touch the disk: the committer that batches appends into group commits,
// the bounds, the most recent events kept in memory, and the waiters. A
// store supplies a Backend that writes and reads its files.
package logcore

import (
	"context"
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

// Backend is the durable part of a store. Only the committer goroutine
// calls Commit and Trim; Read and Lookup may run concurrently with them
// and with each other.
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
type Log struct {
	b      Backend
	logger *slog.Logger

	appends chan *appendReq
	quit    chan struct{}
	stopped chan struct{} // closed when the committer has returned

	// sendMu orders Close after every send to appends that began before
	// it: the committer then answers all of them.
	sendMu    sync.RWMutex
	accepting bool

	mu     sync.RWMutex
	first  uint64
	next   uint64
	tail   []*hub.Event // tail[p%TailSize] is the event at position p, for p in [from, next)
	from   uint64
	wake   chan struct{} // closed and replaced at each append
	closed bool
	failed error // a failed commit: appends are refused from then on
	once   sync.Once
}

var _ hub.Log = (*Log)(nil)

type appendReq struct {
	evs  []*hub.Event
	done chan error
}

// New returns a Log over b, which holds the positions [first, next); recent
// are its last events, in order (up to TailSize of them). It starts the
// committer.
func New(b Backend, first, next uint64, recent []*hub.Event, logger *slog.Logger) *Log {
	l := &Log{
		b:         b,
		logger:    logger,
		appends:   make(chan *appendReq, maxBatch),
		quit:      make(chan struct{}),
		stopped:   make(chan struct{}),
		accepting: true,
		first:     first,
		next:      next,
		tail:      make([]*hub.Event, TailSize),
		from:      next,
		wake:      make(chan struct{}),
	}
	for _, ev := range recent {
		l.tail[ev.Pos%TailSize] = ev
		l.from = min(l.from, ev.Pos)
	}
	go l.commitLoop()
	return l
}

// Append implements hub.Log.
func (l *Log) Append(ctx context.Context, evs ...*hub.Event) error {
	if len(evs) == 0 {
		return nil
	}
	l.mu.RLock()
	failed := l.failed
	l.mu.RUnlock()
	if failed != nil {
		return failed
	}
	r := &appendReq{evs: evs, done: make(chan error, 1)}
	l.sendMu.RLock()
	if !l.accepting {
		l.sendMu.RUnlock()
		return hub.ErrClosed
	}
	select {
	case l.appends <- r:
		l.sendMu.RUnlock()
	case <-ctx.Done():
		l.sendMu.RUnlock()
		return ctx.Err()
	}
	// Once the committer has the events it commits them: wait for the
	// outcome whatever the context says, so that an acknowledgement is
	// never lost in between.
	return <-r.done
}

// commitLoop is the only writer: it commits appends in batches (while one
// commit reaches the disk, the next one gathers), and drops expired events
// when publishers are idle.
func (l *Log) commitLoop() {
	defer close(l.stopped)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	batch := make([]*appendReq, 0, 64)
	for {
		batch = batch[:0]
		select {
		case r := <-l.appends:
			batch = append(batch, r)
		case <-tick.C:
			l.trimIdle()
			continue
		case <-l.quit:
			l.refuseWaiting()
			return
		}
		n := len(batch[0].evs)
	gather:
		for n < maxBatch {
			select {
			case r := <-l.appends:
				batch = append(batch, r)
				n += len(r.evs)
			default:
				break gather
			}
		}
		l.commit(batch)
	}
}

// refuseWaiting fails the appends still queued at Close.
func (l *Log) refuseWaiting() {
	for {
		select {
		case r := <-l.appends:
			r.done <- hub.ErrClosed
		default:
			return
		}
	}
}

func (l *Log) commit(batch []*appendReq) {
	l.mu.RLock()
	first, next := l.first, l.next
	l.mu.RUnlock()
	evs := make([][]*hub.Event, len(batch))
	added := 0
	for i, r := range batch {
		evs[i] = r.evs
		added += len(r.evs)
	}
	results, newFirst, err := l.b.Commit(evs, first, next, time.Now(), 2*added+256)
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

// trimIdle drops events beyond the retention limits while no one appends,
// a chunk per commit, giving way as soon as an append arrives.
func (l *Log) trimIdle() {
	for len(l.appends) == 0 {
		l.mu.RLock()
		first, next, failed := l.first, l.next, l.failed
		l.mu.RUnlock()
		if failed != nil || first == next || !l.b.Beyond(first, next, time.Now()) {
			return
		}
		newFirst, err := l.b.Trim(first, next, time.Now(), trimChunk)
		if err != nil {
			l.logger.Error("dropping expired events from the history failed", "error", err)
			return
		}
		l.mu.Lock()
		l.first = newFirst
		l.from = max(l.from, l.first)
		l.mu.Unlock()
		if newFirst == first {
			return
		}
	}
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

// Close stops the committer, after the commit in progress, and closes the
// backend. Appends still waiting fail with hub.ErrClosed. It is idempotent.
func (l *Log) Close() error {
	var err error
	l.once.Do(func() {
		l.sendMu.Lock()
		l.accepting = false
		l.sendMu.Unlock()
		close(l.quit)
		<-l.stopped
		l.mu.Lock()
		l.closed = true
		close(l.wake)
		l.mu.Unlock()
		err = l.b.Close()
	})
	return err
}
