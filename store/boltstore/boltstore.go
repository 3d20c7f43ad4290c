// Package boltstore is a durable hub.Log in one file, on bbolt: herald's
// default history. Open a Log, pass it as hub.Config.Log, close it after
// the hub.
//
// # Durability
//
// Append returns once its events are on disk: a crash loses nothing that
// was acknowledged. Appends from concurrent publishers share commits, and
// so fsyncs (group commit): while one commit reaches the disk, the next
// gathers every append that arrives meanwhile.
//
// # History
//
// Events are kept by position, and an index maps each ID to its position,
// so that a resume is a lookup whatever the history's size. Retention by
// count and by age drops the oldest events a bounded number at a time,
// within the commits of appends or, when publishers are idle, in small
// commits of its own, so that it never holds publishers up. The most recent
// events also stay in memory, where live delivery and short catch-ups read
// them without touching the disk.
//
// # Damage
//
// bbolt survives a crash at any point: a commit interrupted before its end
// is not there on restart, and it was not acknowledged. Each record carries
// a checksum, so a record damaged on disk is reported as such, never
// delivered. A file that is not a history, or that bbolt cannot open, is
// refused with an error saying so; nothing is rewritten or dropped to make
// it open.
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/herald-sse/herald/hub"
	bolt "go.etcd.io/bbolt"
)

// Defaults of Config.
const (
	// DefaultSize is the number of events retained when Config.Size is
	// zero: about a few hundred megabytes of small events on disk.
	DefaultSize = 1_000_000
	// tailSize is the number of recent events kept in memory.
	tailSize = 8192
	// maxBatch bounds the events of one commit, so that a flood of
	// publishers still gets acknowledgements at a steady pace.
	maxBatch = 4096
	// trimChunk bounds the events one commit drops for retention.
	trimChunk = 4096
)

var (
	bucketEvents = []byte("events")
	bucketIDs    = []byte("ids")
	bucketMeta   = []byte("meta")
	keyFormat    = []byte("format")
	keyNext      = []byte("next")
)

// format identifies the layout of the file.
const format = "herald-history-1"

// Config configures a Log.
type Config struct {
	// Path is the database file. Its directory is created if need be.
	Path string
	// Size is the number of events retained; the oldest beyond it are
	// dropped. Zero means DefaultSize.
	Size int
	// MaxAge, when positive, also drops events older than this.
	MaxAge time.Duration
	// Logger receives the store's logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Log is a hub.Log in a bbolt file. It is safe for concurrent use.
type Log struct {
	db     *bolt.DB
	size   int
	maxAge time.Duration
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
	tail   []*hub.Event // tail[i%tailSize] is the event at position i, for positions in [tailFrom, next)
	from   uint64       // tailFrom
	wake   chan struct{}
	closed bool
	failed error // a failed commit: the store refuses appends from then on
	once   sync.Once
}

var _ hub.Log = (*Log)(nil)

type appendReq struct {
	evs  []*hub.Event
	done chan error
}

// Open opens the history file at cfg.Path, creating it if need be.
func Open(cfg Config) (*Log, error) {
	if cfg.Path == "" {
		return nil, errors.New("boltstore: no path")
	}
	if cfg.Size <= 0 {
		cfg.Size = DefaultSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o750); err != nil {
		return nil, fmt.Errorf("boltstore: %w", err)
	}
	if err := checkFile(cfg.Path); err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w; move it away to start with an empty history", cfg.Path, err)
	}
	var db *bolt.DB
	err := guard(func() (err error) {
		// The freelist is kept in the file (no NoFreelistSync): rebuilding
		// it at open would walk every page on a goroutine of bbolt's,
		// where a damaged page would crash the process.
		db, err = bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType})
		return err
	})
	switch {
	case errors.Is(err, bolt.ErrTimeout):
		return nil, fmt.Errorf("boltstore: %s is in use by another process", cfg.Path)
	case err != nil:
		return nil, fmt.Errorf("boltstore: open %s: %w; if the file is damaged, move it away to start with an empty history", cfg.Path, err)
	}
	l := &Log{
		db:        db,
		size:      cfg.Size,
		maxAge:    cfg.MaxAge,
		logger:    cfg.Logger,
		appends:   make(chan *appendReq, maxBatch),
		quit:      make(chan struct{}),
		stopped:   make(chan struct{}),
		tail:      make([]*hub.Event, tailSize),
		wake:      make(chan struct{}),
		accepting: true,
	}
	if err := l.load(cfg.Path); err != nil {
		db.Close()
		return nil, err
	}
	go l.commitLoop()
	return l, nil
}

// load prepares a new file, or checks an existing one and reads its
// bounds and its most recent events.
func (l *Log) load(path string) error {
	err := guard(func() error {
		return l.db.Update(func(tx *bolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			if meta == nil {
				if tx.Bucket(bucketEvents) != nil || tx.Bucket(bucketIDs) != nil {
					return errors.New("it has events but no format: not a history written by herald")
				}
				var err error
				if meta, err = tx.CreateBucket(bucketMeta); err != nil {
					return err
				}
				if _, err := tx.CreateBucket(bucketEvents); err != nil {
					return err
				}
				if _, err := tx.CreateBucket(bucketIDs); err != nil {
					return err
				}
				if err := meta.Put(keyFormat, []byte(format)); err != nil {
					return err
				}
				return meta.Put(keyNext, binary.BigEndian.AppendUint64(nil, 1))
			}
			if f := meta.Get(keyFormat); !bytes.Equal(f, []byte(format)) {
				return fmt.Errorf("unknown format %q", f)
			}
			if tx.Bucket(bucketEvents) == nil || tx.Bucket(bucketIDs) == nil {
				return errors.New("a bucket is missing")
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("boltstore: %s: %w", path, err)
	}
	err = l.view(func(tx *bolt.Tx) error {
		nb := tx.Bucket(bucketMeta).Get(keyNext)
		if len(nb) != 8 {
			return errors.New("the next position is missing")
		}
		l.next = binary.BigEndian.Uint64(nb)
		c := tx.Bucket(bucketEvents).Cursor()
		k, _ := c.First()
		l.first = l.next
		if k != nil {
			l.first = binary.BigEndian.Uint64(k)
		}
		if last, _ := c.Last(); last != nil && binary.BigEndian.Uint64(last) >= l.next {
			return fmt.Errorf("an event at position %d is past the end, %d", binary.BigEndian.Uint64(last), l.next)
		}
		// The most recent events, into memory.
		l.from = max(l.first, l.next-min(l.next, tailSize))
		for k, v := c.Seek(pos(l.from)); k != nil; k, v = c.Next() {
			p := binary.BigEndian.Uint64(k)
			ev, err := decodeRecord(p, v)
			if err != nil {
				return fmt.Errorf("the record at position %d: %w", p, err)
			}
			l.tail[p%tailSize] = ev
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("boltstore: %s: %w", path, err)
	}
	return nil
}

func pos(p uint64) []byte { return binary.BigEndian.AppendUint64(nil, p) }

// guard turns a panic of bbolt, which it raises on some damaged pages, and
// a fault reading the mapped file, into an error.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the file is damaged: %v", r)
		}
	}()
	return fn()
}

func (l *Log) view(fn func(*bolt.Tx) error) error {
	return guard(func() error { return l.db.View(fn) })
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

// commitLoop is the only writer: it commits appends in batches, and drops
// expired events when publishers are idle.
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

// commit writes a batch of appends in one transaction, one fsync.
func (l *Log) commit(batch []*appendReq) {
	now := time.Now()
	l.mu.RLock()
	first, next := l.first, l.next
	l.mu.RUnlock()
	results := make([]error, len(batch))
	var added []*hub.Event
	newFirst := first
	err := guard(func() error {
		return l.db.Update(func(tx *bolt.Tx) error {
			events, ids := tx.Bucket(bucketEvents), tx.Bucket(bucketIDs)
			events.FillPercent, ids.FillPercent = 1.0, 0.9 // positions only grow; most IDs too
			seen := make(map[string]bool)
			// bbolt keeps the values given to Put until the commit: each
			// record gets bytes of its own in an arena that only grows
			// (a reallocation leaves the earlier records where they were).
			var arena []byte
			p := next
			for i, r := range batch {
				if dupIn(r.evs, ids, seen) {
					results[i] = hub.ErrDuplicateID
					continue
				}
				for _, ev := range r.evs {
					ev.Pos, ev.Time = p, now
					start := len(arena)
					arena = appendRecord(arena, ev)
					if err := events.Put(pos(p), arena[start:len(arena):len(arena)]); err != nil {
						return err
					}
					if err := ids.Put([]byte(ev.ID), pos(p)); err != nil {
						return err
					}
					seen[ev.ID] = true
					added = append(added, ev)
					p++
				}
			}
			if err := tx.Bucket(bucketMeta).Put(keyNext, pos(p)); err != nil {
				return err
			}
			var err error
			newFirst, err = l.trim(tx, first, p, now, 2*len(added)+256)
			return err
		})
	})
	if err != nil {
		err = fmt.Errorf("boltstore: commit: %w", err)
		l.logger.Error("boltstore: a commit failed; the history refuses appends until restarted", "error", err)
		l.mu.Lock()
		l.failed = err
		l.mu.Unlock()
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	l.mu.Lock()
	for _, ev := range added {
		l.tail[ev.Pos%tailSize] = ev
	}
	l.next = next + uint64(len(added))
	l.first = newFirst
	l.from = max(l.from, l.first, l.next-min(l.next, tailSize))
	if len(added) > 0 {
		close(l.wake)
		l.wake = make(chan struct{})
	}
	l.mu.Unlock()
	for i, r := range batch {
		r.done <- results[i]
	}
}

// dupIn reports whether an event of evs has an ID retained, appended in
// this commit, or repeated among evs.
func dupIn(evs []*hub.Event, ids *bolt.Bucket, seen map[string]bool) bool {
	for i, ev := range evs {
		if seen[ev.ID] || ids.Get([]byte(ev.ID)) != nil {
			return true
		}
		for _, other := range evs[:i] {
			if other.ID == ev.ID {
				return true
			}
		}
	}
	return false
}

// trim drops, within tx, up to limit of the oldest events beyond the
// retention limits, and returns the new first position.
func (l *Log) trim(tx *bolt.Tx, first, next uint64, now time.Time, limit int) (uint64, error) {
	events, ids := tx.Bucket(bucketEvents), tx.Bucket(bucketIDs)
	c := events.Cursor()
	cutoff := now.Add(-l.maxAge)
	for k, v := c.First(); k != nil && limit > 0; k, v = c.First() {
		p := binary.BigEndian.Uint64(k)
		t, id, err := recordHead(v)
		if err != nil {
			return first, fmt.Errorf("the record at position %d: %w", p, err)
		}
		if next-p <= uint64(l.size) && (l.maxAge <= 0 || !t.Before(cutoff)) {
			return p, nil
		}
		if err := c.Delete(); err != nil {
			return first, err
		}
		if err := ids.Delete([]byte(id)); err != nil {
			return first, err
		}
		limit--
	}
	if k, _ := c.First(); k != nil {
		return binary.BigEndian.Uint64(k), nil
	}
	return next, nil
}

// trimIdle drops events beyond the retention limits while no one appends,
// a chunk per commit, giving way as soon as an append arrives.
func (l *Log) trimIdle() {
	for len(l.appends) == 0 {
		l.mu.RLock()
		first, next, failed := l.first, l.next, l.failed
		l.mu.RUnlock()
		if failed != nil || !l.beyondLimits(first, next) {
			return
		}
		newFirst := first
		err := guard(func() error {
			return l.db.Update(func(tx *bolt.Tx) error {
				var err error
				newFirst, err = l.trim(tx, first, next, time.Now(), trimChunk)
				return err
			})
		})
		if err != nil {
			l.logger.Error("boltstore: dropping expired events failed", "error", err)
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

// beyondLimits reports whether the oldest event is to be dropped: without
// a commit, which would cost an fsync.
func (l *Log) beyondLimits(first, next uint64) bool {
	if first == next {
		return false
	}
	if next-first > uint64(l.size) {
		return true
	}
	if l.maxAge <= 0 {
		return false
	}
	var t time.Time
	err := l.view(func(tx *bolt.Tx) error {
		_, v := tx.Bucket(bucketEvents).Cursor().First()
		if v == nil {
			return nil
		}
		var err error
		t, _, err = recordHead(v)
		return err
	})
	return err == nil && !t.IsZero() && time.Since(t) > l.maxAge
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
			out[i] = l.tail[(from+uint64(i))%tailSize]
		}
		l.mu.RUnlock()
		return out, nil
	}
	l.mu.RUnlock()
	out := make([]*hub.Event, 0, n)
	err := l.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(pos(from)); k != nil && len(out) < n; k, v = c.Next() {
			p := binary.BigEndian.Uint64(k)
			ev, err := decodeRecord(p, v)
			if err != nil {
				return fmt.Errorf("boltstore: the record at position %d: %w", p, err)
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

// Lookup implements hub.Log.
func (l *Log) Lookup(ctx context.Context, id string) (uint64, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	if l.isClosed() {
		return 0, false, hub.ErrClosed
	}
	var p uint64
	var ok bool
	err := l.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketIDs).Get([]byte(id)); len(v) == 8 {
			p, ok = binary.BigEndian.Uint64(v), true
		}
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	l.mu.RLock()
	retained := p >= l.first
	l.mu.RUnlock()
	return p, ok && retained, nil
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

func (l *Log) isClosed() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.closed
}

// Close stops the committer, after the commit in progress, and closes the
// file. Appends still waiting fail with hub.ErrClosed. It is idempotent.
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
		err = l.db.Close()
	})
	return err
}
