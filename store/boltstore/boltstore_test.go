package boltstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/hub/hubtest"
	"github.com/herald-sse/herald/internal/tmpfs"
	"github.com/herald-sse/herald/store/boltstore"
	"github.com/herald-sse/herald/store/internal/logcore"
)

func open(t *testing.T, cfg boltstore.Config) boltstore.Log {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "history.db")
	}
	l, err := boltstore.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestSuite(t *testing.T) {
	t.Parallel()
	hubtest.Run(t, hubtest.Suite{
		New: func(t *testing.T, o hubtest.Options) hub.Log {
			return open(t, boltstore.Config{Size: o.Size, MaxAge: o.MaxAge})
		},
		Bubble: true,
		Fault: func(t *testing.T) (hub.Log, func(), func()) {
			dir := tmpfs.Mount(t, 2<<20)
			l := open(t, boltstore.Config{Path: filepath.Join(dir, "history.db")})
			var ballast string
			return l, func() { ballast = tmpfs.Fill(t, dir) }, func() { _ = os.Remove(ballast) }
		},
	})
}

func ev(id string) *hub.Event {
	return &hub.Event{Update: hub.Update{ID: id, Topics: []string{"t"}, Data: "data of " + id}}
}

func appendIDs(t *testing.T, l hub.Log, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := l.Append(context.Background(), ev(id)); err != nil {
			t.Fatal(err)
		}
	}
}

// Positions go on after a restart, IDs stay unique, and the history reads
// back whole, from the tail in memory and from the file.
func TestRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "history.db")
	l := open(t, boltstore.Config{Path: path})
	var ids []string
	for i := range 10_000 {
		ids = append(ids, fmt.Sprint("e", i))
	}
	for i := 0; i < len(ids); i += 500 {
		batch := make([]*hub.Event, 0, 500)
		for _, id := range ids[i : i+500] {
			batch = append(batch, ev(id))
		}
		if err := l.Append(context.Background(), batch...); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = open(t, boltstore.Config{Path: path})
	defer l.Close()
	ctx := context.Background()
	first, next, _ := l.Bounds(ctx)
	if first != 1 || next != 10_001 {
		t.Fatalf("bounds after restart [%d, %d)", first, next)
	}
	// The recent events, which the store decoded into memory on opening
	// and shares between reads, are prepared: encoded once for everyone.
	tail, err := l.Read(ctx, next-logcore.TailSize, logcore.TailSize)
	if err != nil || len(tail) != logcore.TailSize {
		t.Fatalf("read %d recent events, %v", len(tail), err)
	}
	for _, e := range tail {
		if !e.Prepared() {
			t.Fatalf("the recent event %s, at position %d, is not prepared", e.ID, e.Pos)
		}
	}
	if err := l.Append(ctx, ev("e9999")); !errors.Is(err, hub.ErrDuplicateID) {
		t.Fatalf("a duplicate of an ID from before the restart: %v", err)
	}
	appendIDs(t, l, "after")
	if p, ok, _ := l.Lookup(ctx, "after"); !ok || p != 10_001 {
		t.Fatalf("the first event after the restart is at %d", p)
	}
	evs, err := l.Read(ctx, 1, 20_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 10_001 {
		t.Fatalf("read %d events", len(evs))
	}
	for i, e := range evs[:10_000] {
		if e.ID != ids[i] || e.Pos != uint64(i+1) || e.Data != "data of "+ids[i] {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
}

// Concurrent appends share commits: many publishers, few fsyncs. The
// number of commits is not observable, but the outcome is: every append
// acknowledged, positions contiguous.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	l := open(t, boltstore.Config{})
	defer l.Close()
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				if err := l.Append(context.Background(), ev(fmt.Sprintf("w%d-%d", w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	first, next, _ := l.Bounds(context.Background())
	if next-first != 3200 {
		t.Fatalf("%d events", next-first)
	}
}

// A damaged file is refused with an error that says so; a file of another
// program is not taken over.
func TestDamagedFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := filepath.Join(dir, "good.db")
	l := open(t, boltstore.Config{Path: good})
	appendIDs(t, l, "a", "b", "c")
	l.Close()
	whole, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"garbage":   write("garbage.db", []byte(strings.Repeat("not a database ", 1000))),
		"truncated": write("truncated.db", whole[:len(whole)/3]),
	} {
		if l, err := boltstore.Open(boltstore.Config{Path: path}); err == nil {
			l.Close()
			t.Errorf("%s: opened", name)
		} else if !strings.Contains(err.Error(), path) {
			t.Errorf("%s: the error does not name the file: %v", name, err)
		}
	}
}

// A record damaged on disk is reported, never delivered.
func TestDamagedRecord(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "history.db")
	l := open(t, boltstore.Config{Path: path})
	for i := 0; i < 20_000; i += 1000 { // past the tail in memory
		var evs []*hub.Event
		for j := i; j < i+1000; j++ {
			evs = append(evs, &hub.Event{Update: hub.Update{ID: fmt.Sprint("id-", j), Topics: []string{"t"}, Data: fmt.Sprintf("payload-%06d", j)}})
		}
		if err := l.Append(context.Background(), evs...); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b), "payload-000100")
	if i < 0 {
		t.Fatal("record not found in the file")
	}
	b[i+10] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err = boltstore.Open(boltstore.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = l.Read(context.Background(), 1, 1000)
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("reading a damaged record: %v", err)
	}
}

// A second process cannot open a history in use.
func TestInUse(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "history.db")
	l := open(t, boltstore.Config{Path: path})
	defer l.Close()
	if _, err := boltstore.Open(boltstore.Config{Path: path}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("opening a history in use: %v", err)
	}
}

// Retention by age catches up while publishers are idle, without any
// append to carry it.
func TestIdleTrim(t *testing.T) {
	t.Parallel()
	l := open(t, boltstore.Config{MaxAge: 300 * time.Millisecond})
	defer l.Close()
	appendIDs(t, l, "a", "b", "c")
	deadline := time.Now().Add(10 * time.Second)
	for {
		first, next, _ := l.Bounds(context.Background())
		if first == next {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events older than the maximum age are still there: [%d, %d)", first, next)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, ok, _ := l.Lookup(context.Background(), "a"); ok {
		t.Fatal("an expired ID is still found")
	}
}

// Appends waiting when the log closes are refused, none is left hanging.
func TestCloseWithAppendsInFlight(t *testing.T) {
	t.Parallel()
	l := open(t, boltstore.Config{})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				err := l.Append(context.Background(), ev(fmt.Sprintf("c%d-%d", w, i)))
				if errors.Is(err, hub.ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

// A torn write of a commit's meta page, as a crash in the middle of that
// commit leaves it, takes the history back to the commit before, whole:
// the torn commit was never acknowledged, since an append returns only
// once its commit has reached the disk, meta page included.
func TestTornCommit(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "history.db")
	l := open(t, boltstore.Config{Path: path})
	appendIDs(t, l, "a", "b", "c")
	l.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The newest of the two meta pages, at 0 or 4096: the one whose
	// transaction ID (at 16+48) is higher. Tear it.
	newest := 0
	if le64(b[4096+16+48:]) > le64(b[16+48:]) {
		newest = 4096
	}
	for i := newest + 16 + 20; i < newest+16+40; i++ {
		b[i] = 0xAA
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	l = open(t, boltstore.Config{Path: path})
	defer l.Close()
	first, next, _ := l.Bounds(context.Background())
	if first != 1 || next != 3 {
		t.Fatalf("after the torn commit: [%d, %d), want the two earlier events", first, next)
	}
	appendIDs(t, l, "c") // the torn commit's event was never there
	if p, ok, _ := l.Lookup(context.Background(), "c"); !ok || p != 3 {
		t.Fatalf("c at %d, %v", p, ok)
	}
}

func le64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}
