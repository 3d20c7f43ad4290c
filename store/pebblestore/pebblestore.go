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
	"os"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
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
}

// Log is a hub.Log on Pebble. It is safe for concurrent use.
type Log struct {
	*logcore.Log
}

var _ hub.Log = Log{}

type backend struct {
	db     *pebble.DB
	size   int
	maxAge time.Duration
}

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
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return Log{}, fmt.Errorf("pebblestore: %w", err)
	}
	cache := pebble.NewCache(64 << 20)
	defer cache.Unref()
	opts := &pebble.Options{
		Cache:              cache,
		MemTableSize:       16 << 20,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             logger{cfg.Logger},
	}
	// A resume and each duplicate check look an ID up: Bloom filters
	// spare them the tables that do not hold it, at every level.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(cfg.Dir, opts)
	if err != nil {
		return Log{}, fmt.Errorf("pebblestore: open %s: %w; if it is damaged, move it away to start with an empty history", cfg.Dir, err)
	}
	b := &backend{db: db, size: cfg.Size, maxAge: cfg.MaxAge}
	first, next, recent, err := b.load()
	if err != nil {
		db.Close()
		return Log{}, fmt.Errorf("pebblestore: %s: %w", cfg.Dir, err)
	}
	return Log{logcore.New(b, first, next, recent, cfg.Logger)}, nil
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
	recent, err = b.Read(from, int(next-from))
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
func (b *backend) Commit(batches [][]*hub.Event, first, next uint64, now time.Time, trimLimit int) ([]error, uint64, error) {
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
	if first >= next {
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

// Trim implements logcore.Backend.
func (b *backend) Trim(first, next uint64, now time.Time, limit int) (uint64, error) {
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

// Close implements logcore.Backend.
func (b *backend) Close() error { return b.db.Close() }

// logger passes Pebble's errors to slog and drops its chatter.
type logger struct{ l *slog.Logger }

func (logger) Infof(string, ...any) {}

func (g logger) Errorf(format string, args ...any) {
	g.l.Error("pebblestore: " + fmt.Sprintf(format, args...))
}

func (g logger) Fatalf(format string, args ...any) {
	msg := "pebblestore: " + fmt.Sprintf(format, args...)
	g.l.Error(msg)
	panic(msg) // Pebble does not expect Fatalf to return
}
