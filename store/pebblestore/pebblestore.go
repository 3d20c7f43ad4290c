// Package pebblestore is a durable hub.Log on Pebble, CockroachDB's storage
// engine: herald's default history. Open a Log, pass it as hub.Config.Log,
// close it after the hub.
//
// # Why Pebble
//
// A publication is acknowledged once its event is on disk. Pebble makes a
// commit durable with one write and one fdatasync of its write-ahead log;
// bbolt, the other store, needs two fdatasyncs (its pages, then its meta
// page). On this project's machine that is about 6,000 against 3,400
// durable commits a second for one writer, and it decides how fast a single
// publisher can go. Commits of concurrent publishers share one sync in both
// (group commit, see logcore).
//
// # Layout
//
// One Pebble database, in a directory:
//
//	e <position, 8 bytes big-endian>  the event's record (see record)
//	i <ID>                            the event's position
//	m format, m next                  the layout and the next position
//
// Retention drops the oldest events a bounded number per commit, with a
// range deletion for the events and a deletion per ID.
//
// # Faults
//
// Pebble gives up on a database whose commit failed: the batch is in its
// memtable, readable, but not durable, and it calls its logger's Fatalf,
// which must not return. This store's panics, and logcore turns the panic
// into a failed append (see logcore.New). For a full disk, the recovery
// waits until a probe file the size of the write-ahead log, and some MiB
// more, can be written and synced in the directory, then closes the
// database and opens it again, holding the directory's lock throughout: at
// open Pebble replays its log and flushes it, with syncs, so that the
// database it opens is durable, the failed batches included when they
// reached the log. Another fault is left to a restart, which does the
// same. Open probes likewise, and fails on a disk without room for the
// replay, where Pebble's open would retry without end. Pebble's own
// goroutines also call Fatalf on a failed write of its manifest: that
// panic ends the process, as Pebble intends, and a restart recovers.
//
// # Damage
//
// Pebble checksums its log and its tables, and replays its log at open: a
// commit interrupted by a crash is not there afterwards, and it had not been
// acknowledged. Records carry checksums of their own as well. A damaged
// database is refused with an error naming it.
package pebblestore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/store/internal/logcore"
	"github.com/herald-sse/herald/store/internal/record"
)

// DefaultSize is the number of events retained when Config.Size is zero.
const DefaultSize = 1_000_000

const format = "herald-history-pebble-1"

var (
	keyFormat = []byte("m format")
	keyNext   = []byte("m next")
)

func eventKey(p uint64) []byte { return binary.BigEndian.AppendUint64([]byte{'e'}, p) }

func idKey(id string) []byte { return append([]byte{'i'}, id...) }

// Config configures a Log.
type Config struct {
	// Dir is the database's directory, created if need be.
	Dir string
	// Size is the number of events retained; the oldest beyond it are
	// dropped. Zero means DefaultSize.
	Size int
	// MaxAge, when positive, also drops events older than this.
	MaxAge time.Duration
	// Logger receives the store's logs. Nil means slog.Default().
	Logger *slog.Logger

	// fs is the filesystem, for tests that inject faults. Nil means the
	// operating system's.
	fs vfs.FS
}

// Log is a hub.Log on Pebble. It is safe for concurrent use.
type Log struct {
	*logcore.Log
}

var (
	_ hub.Log           = Log{}
	_ hub.HealthChecker = Log{}
)

type backend struct {
	dir    string
	fs     vfs.FS
	lock   *pebble.Lock // the directory's, held from Open to Close
	logger *slog.Logger
	size   int
	maxAge time.Duration

	// mu guards db, which Recover replaces; the other methods hold it
	// for reading while they use db.
	mu sync.RWMutex
	db *pebble.DB // nil when a reopen failed
}

// errReopening is the error of reads while the database is closed to be
// reopened.
var errReopening = errors.New("pebblestore: the database is closed after a fault, to be reopened")

// probeMargin is the room, beyond the size of the write-ahead log, that a
// reopen needs: a new log, a manifest, the options file.
const probeMargin = 4 << 20

// Open opens the history in cfg.Dir, creating it if need be.
func Open(cfg Config) (Log, error) {
	if cfg.Dir == "" {
		return Log{}, errors.New("pebblestore: no directory")
	}
	if cfg.Size <= 0 {
		cfg.Size = DefaultSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.fs == nil {
		cfg.fs = vfs.Default
	}
	if err := cfg.fs.MkdirAll(cfg.Dir, 0o750); err != nil {
		return Log{}, fmt.Errorf("pebblestore: %w", err)
	}
	lock, err := pebble.LockDirectory(cfg.Dir, cfg.fs)
	switch {
	case err != nil && inUse(err):
		return Log{}, fmt.Errorf("pebblestore: %s is in use by another herald process", cfg.Dir)
	case err != nil:
		return Log{}, fmt.Errorf("pebblestore: lock %s: %w", cfg.Dir, err)
	}
	b := &backend{dir: cfg.Dir, fs: cfg.fs, lock: lock, logger: cfg.Logger, size: cfg.Size, maxAge: cfg.MaxAge}
	// Pebble's open replays the log into tables, and retries a failed
	// write of them without end: on a full disk it would never return.
	if err := b.probe(false); err != nil {
		_ = lock.Close()
		return Log{}, fmt.Errorf("pebblestore: open %s: no room to replay its log: %w", cfg.Dir, err)
	}
	if b.db, err = b.open(); err != nil {
		_ = lock.Close()
		if pebble.IsCorruptionError(err) {
			return Log{}, fmt.Errorf("pebblestore: open %s: %w; it is damaged: move it away to start with an empty history", cfg.Dir, err)
		}
		return Log{}, fmt.Errorf("pebblestore: open %s: %w", cfg.Dir, err)
	}
	first, next, recent, err := b.load()
	if err != nil {
		_ = b.Close()
		return Log{}, fmt.Errorf("pebblestore: %s: %w", cfg.Dir, err)
	}
	return Log{logcore.New(b, first, next, recent, cfg.Logger)}, nil
}

// inUse reports whether locking a directory failed because another
// process holds the lock (or another Log of this one).
func inUse(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) ||
		strings.Contains(err.Error(), "lock held by current process")
}

// open opens the database, whose directory is locked. A panic of Pebble
// (its Fatalf) is an error.
func (b *backend) open() (db *pebble.DB, err error) {
	cache := pebble.NewCache(64 << 20)
	defer cache.Unref()
	opts := &pebble.Options{
		FS:                 b.fs,
		Lock:               b.lock,
		Cache:              cache,
		MemTableSize:       16 << 20,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             newLogger(b.logger),
	}
	// A resume and each duplicate check look an ID up: Bloom filters
	// spare them the tables that do not hold it, at every level.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: opening the database failed fatally: %v", logcore.ErrPermanent, r)
		}
	}()
	return pebble.Open(b.dir, opts)
}

// load prepares a new database, or checks an existing one and reads its
// bounds and its most recent events.
func (b *backend) load() (first, next uint64, recent []*hub.Event, err error) {
	f, err := b.get(keyFormat)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if k, _ := b.firstKey(nil, nil); k != nil {
			return 0, 0, nil, errors.New("it holds data but no format: not a history written by herald")
		}
		batch := b.db.NewBatch()
		defer batch.Close()
		_ = batch.Set(keyFormat, []byte(format), nil)
		_ = batch.Set(keyNext, binary.BigEndian.AppendUint64(nil, 1), nil)
		return 1, 1, nil, batch.Commit(pebble.Sync)
	case err != nil:
		return 0, 0, nil, err
	case !bytes.Equal(f, []byte(format)):
		return 0, 0, nil, fmt.Errorf("unknown format %q", f)
	}
	nb, err := b.get(keyNext)
	if err != nil || len(nb) != 8 {
		return 0, 0, nil, fmt.Errorf("the next position is missing (%v)", err)
	}
	next = binary.BigEndian.Uint64(nb)
	first = next
	k, err := b.firstKey(eventKey(0), eventKey(next+1))
	if err != nil {
		return 0, 0, nil, err
	}
	if k != nil {
		first = binary.BigEndian.Uint64(k[1:])
	}
	if k, _ := b.firstKey(eventKey(next), []byte{'f'}); k != nil {
		return 0, 0, nil, fmt.Errorf("an event at position %d is past the end, %d", binary.BigEndian.Uint64(k[1:]), next)
	}
	from := max(first, next-min(next, logcore.TailSize))
	recent, err = b.read(from, int(next-from))
	return first, next, recent, err
}

// get returns a copy of the value of key.
func (b *backend) get(key []byte) ([]byte, error) {
	v, closer, err := b.db.Get(key)
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

// firstKey returns a copy of the first key in [lower, upper), nil if none.
func (b *backend) firstKey(lower, upper []byte) ([]byte, error) {
	it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	if !it.First() {
		return nil, it.Error()
	}
	return bytes.Clone(it.Key()), nil
}

// Commit implements logcore.Backend.
func (b *backend) Commit(batches [][]*hub.Event, first, next uint64, now time.Time, trimLimit int) (_ []error, _ uint64, err error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.db == nil {
		return nil, first, errReopening
	}
	defer catchFatal(&err)
	results := make([]error, len(batches))
	batch := b.db.NewBatch()
	defer batch.Close()
	seen := make(map[string]bool)
	var rec []byte
	p := next
	for i, evs := range batches {
		dup, err := b.dupIn(evs, seen)
		if err != nil {
			return nil, first, fmt.Errorf("pebblestore: commit: %w", err)
		}
		if dup {
			results[i] = hub.ErrDuplicateID
			continue
		}
		for _, ev := range evs {
			ev.Pos, ev.Time = p, now
			rec = record.Append(rec[:0], ev) // a batch copies what it is given
			_ = batch.Set(eventKey(p), rec, nil)
			_ = batch.Set(idKey(ev.ID), binary.BigEndian.AppendUint64(nil, p), nil)
			seen[ev.ID] = true
			p++
		}
	}
	_ = batch.Set(keyNext, binary.BigEndian.AppendUint64(nil, p), nil)
	newFirst, err := b.trim(batch, first, p, now, trimLimit)
	if err != nil {
		return nil, first, fmt.Errorf("pebblestore: commit: %w", err)
	}
	if err := batch.Commit(pebble.Sync); err != nil {
		return nil, first, fmt.Errorf("pebblestore: commit: %w", err)
	}
	return results, newFirst, nil
}

// dupIn reports whether an event of evs has an ID retained, appended in
// this commit, or repeated among evs.
func (b *backend) dupIn(evs []*hub.Event, seen map[string]bool) (bool, error) {
	var own map[string]bool
	if len(evs) > 1 {
		own = make(map[string]bool, len(evs))
	}
	for _, ev := range evs {
		if seen[ev.ID] || own[ev.ID] {
			return true, nil
		}
		_, closer, err := b.db.Get(idKey(ev.ID))
		switch {
		case err == nil:
			closer.Close()
			return true, nil
		case !errors.Is(err, pebble.ErrNotFound):
			return false, err
		}
		if own != nil {
			own[ev.ID] = true
		}
	}
	return false, nil
}

// trim adds to batch the deletion of up to limit of the oldest events
// beyond the retention limits, and returns the first position retained.
func (b *backend) trim(batch *pebble.Batch, first, next uint64, now time.Time, limit int) (uint64, error) {
	if !b.Beyond(first, next, now) {
		return first, nil
	}
	it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: eventKey(first), UpperBound: eventKey(next)})
	if err != nil {
		return first, err
	}
	defer it.Close()
	newFirst := first
	for ok := it.First(); ok && limit > 0; ok = it.Next() {
		p := binary.BigEndian.Uint64(it.Key()[1:])
		t, id, err := record.Head(it.Value())
		if err != nil {
			return first, fmt.Errorf("the record at position %d: %w", p, err)
		}
		if next-p <= uint64(b.size) && (b.maxAge <= 0 || !t.Before(now.Add(-b.maxAge))) {
			break
		}
		_ = batch.Delete(idKey(id), nil)
		newFirst = p + 1
		limit--
	}
	if err := it.Error(); err != nil {
		return first, err
	}
	if newFirst > first {
		_ = batch.DeleteRange(eventKey(first), eventKey(newFirst), nil)
	}
	return newFirst, nil
}

// Beyond implements logcore.Backend.
func (b *backend) Beyond(first, next uint64, now time.Time) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if first >= next || b.db == nil {
		return false
	}
	if next-first > uint64(b.size) {
		return true
	}
	if b.maxAge <= 0 {
		return false
	}
	v, err := b.get(eventKey(first))
	if err != nil {
		return false
	}
	t, _, err := record.Head(v)
	return err == nil && now.Sub(t) > b.maxAge
}

// Trim implements logcore.Backend. A fatal error of Pebble panics, for
// logcore to see: the database is then unusable.
func (b *backend) Trim(first, next uint64, now time.Time, limit int) (uint64, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.db == nil {
		return first, errReopening
	}
	batch := b.db.NewBatch()
	defer batch.Close()
	newFirst, err := b.trim(batch, first, next, now, limit)
	if err != nil || newFirst == first {
		return first, err
	}
	// Dropping expired events need not reach the disk at once: a crash
	// only brings them back, to be dropped again.
	return newFirst, batch.Commit(pebble.NoSync)
}

// Read implements logcore.Backend.
func (b *backend) Read(from uint64, n int) ([]*hub.Event, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.db == nil {
		return nil, errReopening
	}
	return b.read(from, n)
}

// read reads events; b.mu is held, or the backend is not shared yet.
func (b *backend) read(from uint64, n int) ([]*hub.Event, error) {
	it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: eventKey(from), UpperBound: []byte{'f'}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := make([]*hub.Event, 0, n)
	for ok := it.First(); ok && len(out) < n; ok = it.Next() {
		p := binary.BigEndian.Uint64(it.Key()[1:])
		ev, err := record.Decode(p, it.Value())
		if err != nil {
			return nil, fmt.Errorf("pebblestore: the record at position %d: %w", p, err)
		}
		out = append(out, ev)
	}
	return out, it.Error()
}

// Lookup implements logcore.Backend.
func (b *backend) Lookup(id string) (uint64, bool, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.db == nil {
		return 0, false, errReopening
	}
	v, err := b.get(idKey(id))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		return 0, false, nil
	case err != nil:
		return 0, false, err
	case len(v) != 8:
		return 0, false, fmt.Errorf("pebblestore: the position of %q is damaged", id)
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// Recover implements logcore.Backend: once a probe shows room for it, it
// closes the database, which Pebble gave up on, and opens it again. (Room
// can run out again between the probe and the open, which then waits for
// it: Pebble retries a failed flush without end.)
func (b *backend) Recover(error) (first, next uint64, recent []*hub.Event, err error) {
	if err := b.probe(true); err != nil {
		return 0, 0, nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.db != nil {
		if err := closeDB(b.db); err != nil {
			b.logger.Debug("pebblestore: closing the database after a fault", "error", err)
		}
		b.db = nil
	}
	if b.db, err = b.open(); err != nil {
		return 0, 0, nil, fmt.Errorf("pebblestore: reopen %s: %w", b.dir, err)
	}
	return b.load()
}

// probe writes and syncs a file as large as the write-ahead log and
// probeMargin, and removes it: an open replays the log into tables. With
// always false, an empty log (a new database) needs no probe.
func (b *backend) probe(always bool) error {
	var wal int64
	names, err := b.fs.List(b.dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		if strings.HasSuffix(n, ".log") {
			if fi, err := b.fs.Stat(b.fs.PathJoin(b.dir, n)); err == nil {
				wal += fi.Size()
			}
		}
	}
	if wal == 0 && !always {
		return nil
	}
	size := wal + probeMargin
	name := b.fs.PathJoin(b.dir, "herald-probe")
	f, err := b.fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("pebblestore: probe: %w", err)
	}
	defer func() { _ = b.fs.Remove(name) }()
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for size > 0 {
		n := min(size, int64(len(chunk)))
		if _, err := f.Write(chunk[:n]); err != nil {
			return fmt.Errorf("pebblestore: probe: %w", err)
		}
		size -= n
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("pebblestore: probe: %w", err)
	}
	return nil
}

// closeDB closes a database, which may have failed: a panic is an error.
func closeDB(db *pebble.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pebblestore: close: %v", r)
		}
	}()
	return db.Close()
}

// Close implements logcore.Backend.
func (b *backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var err error
	if b.db != nil {
		err = closeDB(b.db)
		b.db = nil
	}
	if b.lock != nil {
		err = errors.Join(err, b.lock.Close())
		b.lock = nil
	}
	return err
}

// logger passes Pebble's errors to slog and drops its chatter. Pebble
// retries a failed flush at once, without end: an error repeated within
// repeatEvery is counted, not logged.
type logger struct {
	l  *slog.Logger
	mu sync.Mutex
	// last is when each message format was last logged, and how many
	// were dropped since.
	last map[string]*repeat
}

type repeat struct {
	at      time.Time
	dropped int
}

const repeatEvery = 10 * time.Second

func newLogger(l *slog.Logger) *logger { return &logger{l: l, last: make(map[string]*repeat)} }

func (*logger) Infof(string, ...any) {}

func (g *logger) Errorf(format string, args ...any) {
	now := time.Now()
	g.mu.Lock()
	r := g.last[format]
	if r != nil && now.Sub(r.at) < repeatEvery {
		r.dropped++
		g.mu.Unlock()
		return
	}
	dropped := 0
	if r != nil {
		dropped = r.dropped
	} else if len(g.last) > 100 {
		clear(g.last) // formats are few; bound the map all the same
	}
	g.last[format] = &repeat{at: now}
	g.mu.Unlock()
	if dropped > 0 {
		g.l.Error("pebblestore: "+fmt.Sprintf(format, args...), "repeated", dropped)
		return
	}
	g.l.Error("pebblestore: " + fmt.Sprintf(format, args...))
}

// Fatalf panics: Pebble does not expect it to return. The panic carries
// the error among args, if any, so that a commit's caller can tell a full
// disk from another fault (see catchFatal).
func (g *logger) Fatalf(format string, args ...any) {
	f := &fatal{msg: "pebblestore: " + fmt.Sprintf(format, args...)}
	for _, a := range args {
		if err, ok := a.(error); ok {
			f.err = err
			break
		}
	}
	panic(f)
}

// fatal is the panic of Fatalf.
type fatal struct {
	msg string
	err error
}

func (f *fatal) Error() string { return f.msg }
func (f *fatal) Unwrap() error { return f.err }

// catchFatal turns the panic of Fatalf into *err; other panics go on.
func catchFatal(err *error) {
	if r := recover(); r != nil {
		f, ok := r.(*fatal)
		if !ok {
			panic(r)
		}
		*err = f
	}
}
