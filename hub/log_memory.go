package hub

import (
	"context"
	"sync"
	"time"
)

// DefaultHistorySize is the number of events a MemoryLog retains when its
// configuration does not say: a bound, since a log in memory that grew
// with every publish would end the process.
const DefaultHistorySize = 10_000

// MemoryLogConfig configures a MemoryLog. Its zero value gives the defaults.
type MemoryLogConfig struct {
	// Size is the number of events retained; older ones are dropped.
	// Zero means DefaultHistorySize.
	Size int
	// MaxAge, when positive, also drops events older than this.
	MaxAge time.Duration
}

// MemoryLog is a Log that keeps its events in memory: nothing survives the
// process. It is the hub's default when no store is configured, and the
// store of "herald serve --store memory".
type MemoryLog struct {
	size   int
	maxAge time.Duration

	mu     sync.Mutex
	ring   []*Event // ring[(head+i)%len(ring)] is the event at first+i
	head   int
	count  int
	first  uint64
	ids    map[string]uint64
	wake   chan struct{} // closed and replaced at each append
	closed bool
}

var (
	_ Log          = (*MemoryLog)(nil)
	_ RecentReader = (*MemoryLog)(nil)
)

// NewMemoryLog returns an empty MemoryLog.
func NewMemoryLog(cfg MemoryLogConfig) *MemoryLog {
	if cfg.Size <= 0 {
		cfg.Size = DefaultHistorySize
	}
	return &MemoryLog{
		size:   cfg.Size,
		maxAge: cfg.MaxAge,
		first:  1,
		ids:    make(map[string]uint64),
		wake:   make(chan struct{}),
	}
}

// Append implements Log.
func (l *MemoryLog) Append(ctx context.Context, evs ...*Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	var own map[string]bool
	if len(evs) > 1 {
		own = make(map[string]bool, len(evs))
	}
	for _, ev := range evs {
		if _, dup := l.ids[ev.ID]; dup || own[ev.ID] {
			return ErrDuplicateID
		}
		if own != nil {
			own[ev.ID] = true
		}
	}
	now := time.Now()
	for _, ev := range evs {
		ev.Prepare()
		ev.Pos, ev.Time = l.first+uint64(l.count), now
		l.push(ev)
	}
	l.expire(now)
	close(l.wake)
	l.wake = make(chan struct{})
	return nil
}

// push adds ev at the end, dropping the oldest event when the log is full.
func (l *MemoryLog) push(ev *Event) {
	if l.count == l.size {
		l.drop()
	}
	if l.count == len(l.ring) {
		l.grow()
	}
	l.ring[(l.head+l.count)%len(l.ring)] = ev
	l.count++
	l.ids[ev.ID] = ev.Pos
}

// grow doubles the ring, up to the log's size: a small log allocates little.
func (l *MemoryLog) grow() {
	ring := make([]*Event, min(max(2*len(l.ring), 64), l.size))
	for i := range l.count {
		ring[i] = l.ring[(l.head+i)%len(l.ring)]
	}
	l.ring, l.head = ring, 0
}

// drop removes the oldest event.
func (l *MemoryLog) drop() {
	ev := l.ring[l.head]
	l.ring[l.head] = nil
	delete(l.ids, ev.ID)
	l.head = (l.head + 1) % len(l.ring)
	l.count--
	l.first++
}

// expire drops the events older than the maximum age.
func (l *MemoryLog) expire(now time.Time) {
	if l.maxAge <= 0 {
		return
	}
	cutoff := now.Add(-l.maxAge)
	for l.count > 0 && l.ring[l.head].Time.Before(cutoff) {
		l.drop()
	}
}

// Read implements Log.
func (l *MemoryLog) Read(ctx context.Context, from uint64, limit int) ([]*Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	return l.readLocked(from, limit), nil
}

// ReadRecent implements RecentReader: a MemoryLog holds all it retains in
// memory, so it answers every read until it is closed.
func (l *MemoryLog) ReadRecent(from uint64, limit int) ([]*Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, false
	}
	return l.readLocked(from, limit), true
}

// readLocked returns up to limit events from position from, as Read. l.mu
// is held.
func (l *MemoryLog) readLocked(from uint64, limit int) []*Event {
	l.expire(time.Now())
	from = max(from, l.first)
	next := l.first + uint64(l.count)
	if from >= next || limit <= 0 {
		return nil
	}
	n := int(min(next-from, uint64(limit)))
	out := make([]*Event, n)
	start := l.head + int(from-l.first)
	for i := range out {
		out[i] = l.ring[(start+i)%len(l.ring)]
	}
	return out
}

// Lookup implements Log.
func (l *MemoryLog) Lookup(ctx context.Context, id string) (uint64, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, false, ErrClosed
	}
	l.expire(time.Now())
	pos, ok := l.ids[id]
	return pos, ok, nil
}

// Bounds implements Log.
func (l *MemoryLog) Bounds(ctx context.Context) (first, next uint64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, 0, ErrClosed
	}
	l.expire(time.Now())
	return l.first, l.first + uint64(l.count), nil
}

// Wait implements Log.
func (l *MemoryLog) Wait(ctx context.Context, after uint64) error {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return ErrClosed
		}
		next, wake := l.first+uint64(l.count), l.wake
		l.mu.Unlock()
		if next > after {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close implements Log.
func (l *MemoryLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.wake)
		l.ring, l.ids = nil, nil
	}
	return nil
}
