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
// # Faults
//
// A commit that fails is rolled back by bbolt, and fails its appends (see
// logcore.New). For a full disk, a probe commit is retried in the
// background, and appends are accepted again once one succeeds.
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
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/store/internal/logcore"
	"github.com/herald-sse/herald/store/internal/record"
	bolt "go.etcd.io/bbolt"
)

// DefaultSize is the number of events retained when Config.Size is zero:
// about a few hundred megabytes of small events on disk.
const DefaultSize = 1_000_000

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

	// openFile opens the file, for tests that inject faults. Nil means
	// os.OpenFile.
	openFile func(string, int, os.FileMode) (*os.File, error)
}

// Log is a hub.Log in a bbolt file. It is safe for concurrent use.
type Log struct {
	*logcore.Log
}

var (
	_ hub.Log           = Log{}
	_ hub.HealthChecker = Log{}
)

// backend writes and reads the file for logcore.
type backend struct {
	db     *bolt.DB
	size   int
	maxAge time.Duration
}

// Open opens the history file at cfg.Path, creating it if need be.
func Open(cfg Config) (Log, error) {
	if cfg.Path == "" {
		return Log{}, errors.New("boltstore: no path")
	}
	if cfg.Size <= 0 {
		cfg.Size = DefaultSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o750); err != nil {
		return Log{}, fmt.Errorf("boltstore: %w", err)
	}
	if err := checkFile(cfg.Path); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return Log{}, fmt.Errorf("boltstore: open %s: %w", cfg.Path, err)
		}
		return Log{}, fmt.Errorf("boltstore: open %s: %w; move it away to start with an empty history", cfg.Path, err)
	}
	var db *bolt.DB
	err := guard(func() (err error) {
		// The freelist is kept in the file (no NoFreelistSync): rebuilding
		// it at open would walk every page on a goroutine of bbolt's,
		// where a damaged page would crash the process.
		db, err = bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType, OpenFile: cfg.openFile})
		return err
	})
	switch {
	case errors.Is(err, bolt.ErrTimeout):
		return Log{}, fmt.Errorf("boltstore: %s is in use by another herald process", cfg.Path)
	case err != nil && damaged(err):
		return Log{}, fmt.Errorf("boltstore: open %s: %w; it is damaged: move it away to start with an empty history", cfg.Path, err)
	case err != nil:
		return Log{}, fmt.Errorf("boltstore: open %s: %w", cfg.Path, err)
	}
	b := &backend{db: db, size: cfg.Size, maxAge: cfg.MaxAge}
	first, next, recent, err := b.load()
	if err != nil {
		db.Close()
		return Log{}, fmt.Errorf("boltstore: %s: %w", cfg.Path, err)
	}
	return Log{logcore.New(b, first, next, recent, cfg.Logger)}, nil
}

// load prepares a new file, or checks an existing one, and reads its
// bounds and its most recent events.
func (b *backend) load() (first, next uint64, recent []*hub.Event, err error) {
	err = guard(func() error {
		return b.db.Update(func(tx *bolt.Tx) error {
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
				return meta.Put(keyNext, pos(1))
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
		return 0, 0, nil, err
	}
	return b.bounds()
}

// bounds reads the file's bounds and its most recent events.
func (b *backend) bounds() (first, next uint64, recent []*hub.Event, err error) {
	err = b.view(func(tx *bolt.Tx) error {
		nb := tx.Bucket(bucketMeta).Get(keyNext)
		if len(nb) != 8 {
			return errors.New("the next position is missing")
		}
		next = binary.BigEndian.Uint64(nb)
		c := tx.Bucket(bucketEvents).Cursor()
		first = next
		if k, _ := c.First(); k != nil {
			first = binary.BigEndian.Uint64(k)
		}
		if last, _ := c.Last(); last != nil && binary.BigEndian.Uint64(last) >= next {
			return fmt.Errorf("an event at position %d is past the end, %d", binary.BigEndian.Uint64(last), next)
		}
		from := max(first, next-min(next, logcore.TailSize))
		for k, v := c.Seek(pos(from)); k != nil; k, v = c.Next() {
			p := binary.BigEndian.Uint64(k)
			ev, err := record.Decode(p, v)
			if err != nil {
				return fmt.Errorf("the record at position %d: %w", p, err)
			}
			recent = append(recent, ev)
		}
		return nil
	})
	return first, next, recent, err
}

// damaged reports whether bbolt refused a file for its content.
func damaged(err error) bool {
	var d *damage
	return errors.Is(err, bolt.ErrInvalid) || errors.Is(err, bolt.ErrChecksum) ||
		errors.Is(err, bolt.ErrVersionMismatch) || errors.As(err, &d)
}

func pos(p uint64) []byte { return binary.BigEndian.AppendUint64(nil, p) }

// guard turns a panic of bbolt, which it raises on some damaged pages, and
// a fault reading the mapped file, into an error.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &damage{r}
		}
	}()
	return fn()
}

// damage is a panic of bbolt, or a fault reading the file.
type damage struct{ value any }

func (d *damage) Error() string { return fmt.Sprintf("the file is damaged: %v", d.value) }

func (b *backend) view(fn func(*bolt.Tx) error) error {
	return guard(func() error { return b.db.View(fn) })
}

// Commit implements logcore.Backend.
func (b *backend) Commit(batches [][]*hub.Event, first, next uint64, now time.Time, trimLimit int) ([]error, uint64, error) {
	results := make([]error, len(batches))
	newFirst := first
	err := guard(func() error {
		return b.db.Update(func(tx *bolt.Tx) error {
			events, ids := tx.Bucket(bucketEvents), tx.Bucket(bucketIDs)
			events.FillPercent, ids.FillPercent = 1.0, 0.9 // positions only grow; most IDs too
			seen := make(map[string]bool)
			// bbolt keeps the values given to Put until the commit: each
			// record gets bytes of its own in an arena that only grows
			// (a reallocation leaves the earlier records where they were).
			var arena []byte
			p := next
			for i, evs := range batches {
				if dupIn(evs, ids, seen) {
					results[i] = hub.ErrDuplicateID
					continue
				}
				for _, ev := range evs {
					ev.Pos, ev.Time = p, now
					start := len(arena)
					arena = record.Append(arena, ev)
					if err := events.Put(pos(p), arena[start:len(arena):len(arena)]); err != nil {
						return err
					}
					if err := ids.Put([]byte(ev.ID), pos(p)); err != nil {
						return err
					}
					seen[ev.ID] = true
					p++
				}
			}
			if err := tx.Bucket(bucketMeta).Put(keyNext, pos(p)); err != nil {
				return err
			}
			var err error
			newFirst, err = b.trim(tx, first, p, now, trimLimit)
			return err
		})
	})
	if err != nil {
		return nil, first, fmt.Errorf("boltstore: commit: %w", err)
	}
	return results, newFirst, nil
}

// dupIn reports whether an event of evs has an ID retained, appended in
// this commit, or repeated among evs.
func dupIn(evs []*hub.Event, ids *bolt.Bucket, seen map[string]bool) bool {
	var own map[string]bool
	if len(evs) > 1 {
		own = make(map[string]bool, len(evs))
	}
	for _, ev := range evs {
		if seen[ev.ID] || own[ev.ID] || ids.Get([]byte(ev.ID)) != nil {
			return true
		}
		if own != nil {
			own[ev.ID] = true
		}
	}
	return false
}

// trim drops, within tx, up to limit of the oldest events beyond the
// retention limits, and returns the new first position.
func (b *backend) trim(tx *bolt.Tx, first, next uint64, now time.Time, limit int) (uint64, error) {
	events, ids := tx.Bucket(bucketEvents), tx.Bucket(bucketIDs)
	c := events.Cursor()
	cutoff := now.Add(-b.maxAge)
	for k, v := c.First(); k != nil && limit > 0; k, v = c.First() {
		p := binary.BigEndian.Uint64(k)
		t, id, err := record.Head(v)
		if err != nil {
			return first, fmt.Errorf("the record at position %d: %w", p, err)
		}
		if next-p <= uint64(b.size) && (b.maxAge <= 0 || !t.Before(cutoff)) {
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

// Beyond implements logcore.Backend.
func (b *backend) Beyond(first, next uint64, now time.Time) bool {
	if next-first > uint64(b.size) {
		return true
	}
	if b.maxAge <= 0 {
		return false
	}
	var t time.Time
	err := b.view(func(tx *bolt.Tx) error {
		_, v := tx.Bucket(bucketEvents).Cursor().First()
		if v == nil {
			return nil
		}
		var err error
		t, _, err = record.Head(v)
		return err
	})
	return err == nil && !t.IsZero() && now.Sub(t) > b.maxAge
}

// Trim implements logcore.Backend.
func (b *backend) Trim(first, next uint64, now time.Time, limit int) (uint64, error) {
	newFirst := first
	err := guard(func() error {
		return b.db.Update(func(tx *bolt.Tx) error {
			var err error
			newFirst, err = b.trim(tx, first, next, now, limit)
			return err
		})
	})
	return newFirst, err
}

// Read implements logcore.Backend.
func (b *backend) Read(from uint64, n int) ([]*hub.Event, error) {
	out := make([]*hub.Event, 0, n)
	err := b.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(pos(from)); k != nil && len(out) < n; k, v = c.Next() {
			p := binary.BigEndian.Uint64(k)
			ev, err := record.Decode(p, v)
			if err != nil {
				return fmt.Errorf("boltstore: the record at position %d: %w", p, err)
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

// Lookup implements logcore.Backend.
func (b *backend) Lookup(id string) (uint64, bool, error) {
	var p uint64
	var ok bool
	err := b.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketIDs).Get([]byte(id)); len(v) == 8 {
			p, ok = binary.BigEndian.Uint64(v), true
		}
		return nil
	})
	return p, ok, err
}

// Recover implements logcore.Backend. bbolt rolls a failed commit back,
// and its file stays usable: there is room again once a probe file of
// probeSize can be written and synced beside it, and a probe commit, which
// rewrites the next position as it is, succeeds. (The commit alone could
// fit in the pages the failed one left, and readiness would come and go.)
func (b *backend) Recover(error) (first, next uint64, recent []*hub.Event, err error) {
	if err := probe(b.db.Path()+".probe", probeSize); err != nil {
		return 0, 0, nil, fmt.Errorf("boltstore: probe: %w", err)
	}
	err = guard(func() error {
		return b.db.Update(func(tx *bolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			return meta.Put(keyNext, bytes.Clone(meta.Get(keyNext)))
		})
	})
	if err != nil {
		return 0, 0, nil, fmt.Errorf("boltstore: probe commit: %w", err)
	}
	return b.bounds()
}

// probeSize is the room a recovery asks for, beyond the probe commit's.
const probeSize = 1 << 20

// probe writes and syncs a file of size bytes, and removes it.
func probe(path string, size int) (err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.Remove(path)) }()
	defer func() { err = errors.Join(err, f.Close()) }()
	if _, err := f.Write(make([]byte, size)); err != nil {
		return err
	}
	return f.Sync()
}

// Close implements logcore.Backend.
func (b *backend) Close() error { return b.db.Close() }
