package pebblestore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/hub/hubtest"
	"github.com/herald-sse/herald/store/internal/logcore"
	"github.com/herald-sse/herald/store/pebblestore"
)

func open(t *testing.T, cfg pebblestore.Config) pebblestore.Log {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "history")
	}
	l, err := pebblestore.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestSuite(t *testing.T) {
	t.Parallel()
	hubtest.Run(t, hubtest.Suite{
		New: func(t *testing.T, o hubtest.Options) hub.Log {
			return open(t, pebblestore.Config{Size: o.Size, MaxAge: o.MaxAge})
		},
		// Pebble runs goroutines of its own, which would outlive a
		// synctest bubble: retention by age is tested on the clock.
		Bubble: false,
		Fault: func(t *testing.T) (hub.Log, func(), func()) {
			fs := &faultFS{FS: vfs.Default}
			l := open(t, pebblestore.WithFS(pebblestore.Config{}, fs))
			return l, func() { fs.set(syscall.ENOSPC) }, fs.clear
		},
	})
}

func ev(id string) *hub.Event {
	return &hub.Event{Update: hub.Update{ID: id, Topics: []string{"t"}, Data: "data of " + id}}
}

// Positions go on after a restart, IDs stay unique, and the history reads
// back whole, from the events in memory and from the files.
func TestRestart(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "history")
	l := open(t, pebblestore.Config{Dir: dir})
	const n = 20_000
	for i := 0; i < n; i += 1000 {
		var evs []*hub.Event
		for j := i; j < i+1000; j++ {
			evs = append(evs, ev(fmt.Sprint("e", j)))
		}
		if err := l.Append(context.Background(), evs...); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open(t, pebblestore.Config{Dir: dir})
	defer l.Close()
	ctx := context.Background()
	if first, next, _ := l.Bounds(ctx); first != 1 || next != n+1 {
		t.Fatalf("bounds after restart [%d, %d)", first, next)
	}
	// The recent events, which the store decoded into memory on opening
	// and shares between reads, are prepared: encoded once for everyone.
	tail, err := l.Read(ctx, n+1-logcore.TailSize, logcore.TailSize)
	if err != nil || len(tail) != logcore.TailSize {
		t.Fatalf("read %d recent events, %v", len(tail), err)
	}
	for _, e := range tail {
		if !e.Prepared() {
			t.Fatalf("the recent event %s, at position %d, is not prepared", e.ID, e.Pos)
		}
	}
	if err := l.Append(ctx, ev("e19999")); !errors.Is(err, hub.ErrDuplicateID) {
		t.Fatalf("a duplicate of an ID from before the restart: %v", err)
	}
	evs, err := l.Read(ctx, 1, 2*n)
	if err != nil || len(evs) != n {
		t.Fatalf("read %d events, %v", len(evs), err)
	}
	for i, e := range evs {
		if e.ID != fmt.Sprint("e", i) || e.Pos != uint64(i+1) || e.Data != "data of "+e.ID {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
}

func TestGroupCommit(t *testing.T) {
	t.Parallel()
	l := open(t, pebblestore.Config{})
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
	if first, next, _ := l.Bounds(context.Background()); next-first != 3200 {
		t.Fatalf("%d events", next-first)
	}
}

// A second process cannot open a history in use.
func TestInUse(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "history")
	l := open(t, pebblestore.Config{Dir: dir})
	defer l.Close()
	if _, err := pebblestore.Open(pebblestore.Config{Dir: dir}); err == nil {
		t.Fatal("opened a history in use")
	}
}

// A damaged database is refused with an error that names it; a directory
// of something else is not taken over.
func TestDamaged(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "history")
	l := open(t, pebblestore.Config{Dir: dir})
	for i := 0; i < 5000; i += 500 {
		var evs []*hub.Event
		for j := i; j < i+500; j++ {
			evs = append(evs, ev(fmt.Sprint("d", j)))
		}
		if err := l.Append(context.Background(), evs...); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	// Damage the manifest, which says what the database holds.
	files, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
	if len(files) == 0 {
		t.Fatal("no manifest")
	}
	for _, f := range files {
		if err := os.WriteFile(f, []byte(strings.Repeat("garbage", 100)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := pebblestore.Open(pebblestore.Config{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("opening a damaged history: %v", err)
	}
}
