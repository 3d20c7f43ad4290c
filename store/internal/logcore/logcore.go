// Package logcore is the part of herald's durable stores that does not
// touch the disk: group commit, the bounds, the most recent events kept in
// memory, the waiters, and retention. A store supplies a Backend that
// writes and reads its files.
package logcore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/store/internal/window"
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
	// retryMin and retryMax bound the wait between two attempts to
	// recover from a fault: a freed disk is noticed within retryMax, and
	// a disk that stays full costs an attempt every retryMax.
	retryMin = 100 * time.Millisecond
	retryMax = 10 * time.Second
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
	// Recover makes the backend usable again after a commit failed for
	// want of room (cause wraps ENOSPC or EDQUOT), if it can now: it
	// commits something, or reopens its files, and fails while the fault
	// lasts. It returns what its files hold then, as New takes it: the
	// bounds, and the last events (up to TailSize). The files may hold
	// the events of the failed commits, after every event committed
	// before them. An error wrapping ErrPermanent says that it never will
	// recover. It is never called concurrently with Commit or Trim.
	Recover(cause error) (first, next uint64, recent []*hub.Event, err error)
	// Close releases the files.
	Close() error
}

// ErrPermanent is wrapped by an error of Backend.Recover that no later
// attempt can fix.
var ErrPermanent = errors.New("logcore: the store cannot recover")

// recoverable reports whether a commit that failed with err may succeed
// again once the fault is gone, with no restart: a full disk or quota. Any
// other error, an I/O error above all, leaves the files in a state only
// the recovery at open can be trusted with.
func recoverable(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// fault is why a Log refuses appends: the error its appends and Healthy
// return.
type fault struct {
	cause     error
	permanent bool
}

func (f *fault) Error() string {
	if f.permanent {
		return "the history failed to store events and cannot recover: " + f.cause.Error() +
			"; restart herald once the fault is fixed"
	}
	return "the history failed to store events: " + f.cause.Error() +
		"; it retries, and takes events again once the store can commit"
}

func (f *fault) Unwrap() []error { return []error{hub.ErrUnavailable, f.cause} }

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
	quit    chan struct{}  // closed by Close: the trimmer and the recovery stop
	bg      sync.WaitGroup // the trimmer and the recovery

	w      *window.Window // the bounds, the last TailSize events, the waiters
	mu     sync.RWMutex
	failed *fault // why appends are refused, if they are
	once   sync.Once

	stats commitCounts
}

var (
	_ hub.Log           = (*Log)(nil)
	_ hub.HealthChecker = (*Log)(nil)
	_ hub.RecentReader  = (*Log)(nil)
)

type appendReq struct {
	evs  []*hub.Event
	done chan error // the outcome, or errLead: commit for the others
}

// errLead tells a waiting append that it leads the next commit.
var errLead = errors.New("logcore: lead the next commit")

// New returns a Log over b, which holds the positions [first, next); recent
// are its last events, in order (up to TailSize of them). It starts the
// goroutine that drops expired events while no one appends.
//
// # Faults
//
// A commit that fails, with an error or a panic of the backend, fails its
// appends with an error wrapping hub.ErrUnavailable, and every append
// after it at once, until the backend recovers; Healthy says why. For a
// full disk a goroutine calls Backend.Recover with a growing backoff until
// it succeeds; any other fault is permanent, until a restart. Each is
// logged once, at error level.
func New(b Backend, first, next uint64, recent []*hub.Event, logger *slog.Logger) *Log {
	l := &Log{
		b:      b,
		logger: logger,
		quit:   make(chan struct{}),
		w:      window.New(TailSize, first, next, recent),
	}
	l.idle.L = &l.qmu
	l.bg.Add(1)
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
		return failed // fail fast: no wait for a commit that would fail
	}
	for _, ev := range evs {
		ev.Prepare() // before the window shares it with every reader
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
	defer l.handOver() // whatever happens, so that Close never waits for a lead that is gone
	l.commit(batch)
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
	first, next := l.w.Bounds()
	l.mu.RLock()
	failed := l.failed
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
	var results []error
	var newFirst uint64
	err := guard(func() (err error) {
		results, newFirst, err = l.b.Commit(evs, first, next, time.Now(), 2*added+256)
		return err
	})
	l.stats.committed(added, err)
	if err != nil {
		f := l.fail(err)
		for _, r := range batch {
			r.done <- f
		}
		return
	}
	committed := make([]*hub.Event, 0, added)
	for i, r := range batch {
		if results[i] == nil {
			committed = append(committed, r.evs...)
		}
	}
	l.w.Advance(newFirst, next+uint64(len(committed)), committed...)
	for i, r := range batch {
		r.done <- results[i]
	}
}

// guard runs fn, turning a panic into an error: a backend's panic (Pebble
// panics through its logger on a failed commit) must not escape onto a
// publisher's goroutine, where net/http would swallow it with the lead
// still held.
func guard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			p := &panicError{value: r}
			p.err, _ = r.(error)
			err = p
		}
	}()
	return fn()
}

// panicError is a panic of the backend, as an error.
type panicError struct {
	value any
	err   error // value, if it is an error
}

func (p *panicError) Error() string { return fmt.Sprintf("the store panicked: %v", p.value) }
func (p *panicError) Unwrap() error { return p.err }

// fail records a failed commit: appends are refused from now on. It logs
// the fault and, when it may pass, starts the recovery. It returns the
// fault.
func (l *Log) fail(err error) *fault {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed != nil {
		return l.failed
	}
	l.failed = &fault{cause: err, permanent: !recoverable(err)}
	if l.failed.permanent {
		l.logger.Error("the history cannot store events; publications are refused until herald is restarted once the fault is fixed",
			"error", err)
		return l.failed
	}
	l.logger.Error("the history cannot store events for want of room; publications are refused, and it retries in the background",
		"error", err)
	l.bg.Add(1)
	go l.recoverLoop()
	return l.failed
}

// recoverLoop calls Backend.Recover, with a growing backoff, until it
// succeeds, says it never will, or the log is closed.
func (l *Log) recoverLoop() {
	defer l.bg.Done()
	wait := retryMin
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for attempt := 1; ; attempt++ {
		select {
		case <-timer.C:
		case <-l.quit:
			return
		}
		l.mu.RLock()
		cause := l.failed.cause
		l.mu.RUnlock()
		if !l.takeLead() {
			return
		}
		var first, next uint64
		var recent []*hub.Event
		err := guard(func() (err error) {
			first, next, recent, err = l.b.Recover(cause)
			return err
		})
		if err == nil {
			err = l.adopt(first, next, recent)
		}
		l.handOver()
		switch {
		case err == nil:
			l.logger.Warn("the history stores events again; publications are accepted", "attempts", attempt)
			return
		case errors.Is(err, ErrPermanent):
			l.mu.Lock()
			l.failed = &fault{cause: err, permanent: true}
			l.mu.Unlock()
			l.logger.Error("the history cannot recover; publications are refused until herald is restarted once the fault is fixed",
				"error", err)
			return
		}
		l.logger.Debug("the history still cannot store events", "attempt", attempt, "error", err)
		wait = min(2*wait, retryMax)
		timer.Reset(wait)
	}
}

// takeLead waits until no commit or trim is under way and takes the lead,
// or reports false when the log is closing.
func (l *Log) takeLead() bool {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	for l.leading || len(l.queue) > 0 {
		if l.closing {
			return false
		}
		l.idle.Wait()
	}
	if l.closing {
		return false
	}
	l.leading = true
	return true
}

// adopt takes what a recovered backend holds: the events of failed commits
// that reached its files come after the last one acknowledged, and are
// delivered as any other. It then accepts appends again.
func (l *Log) adopt(first, next uint64, recent []*hub.Event) error {
	_, had := l.w.Bounds() // no commit runs: the caller leads
	if next < had {
		return fmt.Errorf("%w: after recovering, it ends at position %d, before the last event acknowledged, %d",
			ErrPermanent, next, had-1)
	}
	if next > had {
		l.logger.Warn("the history holds events whose commit had failed; they are delivered", "events", next-had)
	}
	i := len(recent)
	for i > 0 && recent[i-1].Pos >= had {
		i--
	}
	l.w.Advance(first, next, recent[i:]...)
	l.mu.Lock()
	l.failed = nil
	l.mu.Unlock()
	return nil
}

// Healthy implements hub.HealthChecker.
func (l *Log) Healthy() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	switch {
	case l.w.Closed():
		return hub.ErrClosed
	case l.failed != nil:
		return l.failed
	}
	return nil
}

// trimLoop drops events beyond the retention limits once a second while
// no one appends, a chunk per commit, giving way as soon as an append
// arrives.
func (l *Log) trimLoop() {
	defer l.bg.Done()
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
	defer l.handOver()
	first, next := l.w.Bounds()
	l.mu.RLock()
	failed := l.failed
	l.mu.RUnlock()
	if failed != nil || first == next {
		return false
	}
	newFirst := first
	err := guard(func() (err error) {
		if l.b.Beyond(first, next, time.Now()) {
			newFirst, err = l.b.Trim(first, next, time.Now(), trimChunk)
		}
		return err
	})
	var p *panicError
	switch {
	case errors.As(err, &p):
		// The store's state is unknown (Pebble panics on a failed
		// commit, this one's included): as for an append's commit.
		l.fail(err)
		return false
	case err != nil:
		l.logger.Error("dropping expired events from the history failed", "error", err)
		return false
	}
	l.w.Advance(newFirst, next)
	return newFirst != first
}

// Read implements hub.Log. Events from the window are shared, and
// prepared; those read from the backend are built for this read alone, and
// left for their one reader to encode (or not, if it wants none of them).
func (l *Log) Read(ctx context.Context, from uint64, limit int) ([]*hub.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if l.w.Closed() {
		return nil, hub.ErrClosed
	}
	if evs, ok := l.w.Read(from, limit); ok {
		return evs, nil
	}
	first, next := l.w.Bounds()
	from = max(from, first)
	if from >= next {
		return nil, nil
	}
	n := int(min(next-from, uint64(limit)))
	var evs []*hub.Event
	err := guard(func() (err error) {
		evs, err = l.b.Read(from, n)
		return err
	})
	return evs, err
}

// ReadRecent implements hub.RecentReader: it answers from the window, the
// last TailSize events, and reports false for older ones, which Read takes
// from the backend.
func (l *Log) ReadRecent(from uint64, limit int) ([]*hub.Event, bool) {
	if l.w.Closed() {
		return nil, false
	}
	return l.w.Read(from, limit)
}

// Lookup implements hub.Log.
func (l *Log) Lookup(ctx context.Context, id string) (uint64, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	if l.w.Closed() {
		return 0, false, hub.ErrClosed
	}
	var p uint64
	var ok bool
	err := guard(func() (err error) {
		p, ok, err = l.b.Lookup(id)
		return err
	})
	if err != nil || !ok {
		return 0, false, err
	}
	first, next := l.w.Bounds()
	if p >= next {
		// The event of a failed commit, which the backend still shows
		// until it recovers: not in the history (yet).
		return 0, false, nil
	}
	return p, p >= first, nil
}

// Bounds implements hub.Log.
func (l *Log) Bounds(ctx context.Context) (first, next uint64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	if l.w.Closed() {
		return 0, 0, hub.ErrClosed
	}
	first, next = l.w.Bounds()
	return first, next, nil
}

// Wait implements hub.Log.
func (l *Log) Wait(ctx context.Context, after uint64) error { return l.w.Wait(ctx, after) }

// Close waits for the commit, or the attempt to recover, under way,
// refuses the appends that come after, and closes the backend. It is
// idempotent.
func (l *Log) Close() error {
	var err error
	l.once.Do(func() {
		// Once closing, no lead starts but those under way, and only
		// a lead starts a recovery (fail): after them, l.bg is
		// complete.
		l.qmu.Lock()
		l.closing = true
		for l.leading || len(l.queue) > 0 {
			l.idle.Wait()
		}
		l.qmu.Unlock()
		close(l.quit)
		l.bg.Wait()
		l.w.Close()
		l.mu.RLock()
		failed := l.failed
		l.mu.RUnlock()
		err = l.b.Close()
		if err != nil && failed != nil {
			// The fault again, most likely (Pebble reports its
			// failed log): it was logged, and the close went fine.
			l.logger.Warn("closing the history after a fault", "error", err)
			err = nil
		}
	})
	return err
}
