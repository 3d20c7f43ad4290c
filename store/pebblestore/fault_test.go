package pebblestore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/store/internal/faulttest"
	"github.com/herald-sse/herald/store/pebblestore"
)

// faultFS is the operating system's filesystem, whose writes, syncs and
// creations fail with an injected error while one is set.
type faultFS struct {
	vfs.FS
	err      atomic.Pointer[syscall.Errno]
	syncOnly bool // only syncs fail: the writes reach the page cache
}

func (fs *faultFS) set(errno syscall.Errno) { fs.err.Store(&errno) }
func (fs *faultFS) clear()                  { fs.err.Store(nil) }

func (fs *faultFS) fault(op, name string) error {
	if e := fs.err.Load(); e != nil && (op == "sync" || !fs.syncOnly) {
		return &os.PathError{Op: op, Path: name, Err: *e}
	}
	return nil
}

func (fs *faultFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if err := fs.fault("open", name); err != nil {
		return nil, err
	}
	f, err := fs.FS.Create(name, c)
	return fs.wrap(f, name, err)
}

func (fs *faultFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, o ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, o...)
	return fs.wrap(f, name, err)
}

func (fs *faultFS) ReuseForWrite(old, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if err := fs.fault("open", name); err != nil {
		return nil, err
	}
	f, err := fs.FS.ReuseForWrite(old, name, c)
	return fs.wrap(f, name, err)
}

func (fs *faultFS) wrap(f vfs.File, name string, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &faultFile{File: f, fs: fs, name: name}, nil
}

type faultFile struct {
	vfs.File
	fs   *faultFS
	name string
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.fault("write", f.name); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.fault("write", f.name); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f *faultFile) Sync() error {
	if err := f.fs.fault("sync", f.name); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultFile) SyncData() error {
	if err := f.fs.fault("sync", f.name); err != nil {
		return err
	}
	return f.File.SyncData()
}

func (f *faultFile) SyncTo(n int64) (bool, error) {
	if err := f.fs.fault("sync", f.name); err != nil {
		return false, err
	}
	return f.File.SyncTo(n)
}

func (f *faultFile) Preallocate(off, n int64) error {
	if err := f.fs.fault("fallocate", f.name); err != nil {
		return err
	}
	return f.File.Preallocate(off, n)
}

// waitHealthy waits until l takes appends again. A store that never
// recovers fails the test by its timeout.
func waitHealthy(t *testing.T, l hub.HealthChecker) {
	t.Helper()
	for l.Healthy() != nil {
		time.Sleep(10 * time.Millisecond)
	}
}

// A failed commit fails its append with hub.ErrUnavailable, and every
// append after it at once; the log says it is unhealthy, and why; it
// closes. A full disk is recovered from once it has room again, with no
// restart; an I/O error is left to a restart. Every acknowledged event is
// there afterwards, in order.
func TestFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		errno     syscall.Errno
		syncOnly  bool
		recovers  bool
		healthMsg string
	}{
		{"ENOSPC", syscall.ENOSPC, false, true, "it retries"},
		// The batch reached the log, not the disk: the reopen replays
		// and flushes it, so it is in the history after all.
		{"ENOSPC at sync", syscall.ENOSPC, true, true, "it retries"},
		{"EIO", syscall.EIO, false, false, "restart herald"},
		{"EIO at sync", syscall.EIO, true, false, "restart herald"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := filepath.Join(t.TempDir(), "history")
			fs := &faultFS{FS: vfs.Default, syncOnly: tc.syncOnly}
			logs := faulttest.NewLogRecorder()
			l := open(t, pebblestore.WithFS(pebblestore.Config{Dir: dir, Logger: slog.New(logs)}, fs))
			var acked []string
			publish := func(id string) error {
				err := l.Append(ctx, ev(id))
				if err == nil {
					acked = append(acked, id)
				}
				return err
			}
			for i := range 3 {
				if err := publish(fmt.Sprint("a", i)); err != nil {
					t.Fatal(err)
				}
			}

			fs.set(tc.errno)
			err := publish("b0")
			if !errors.Is(err, hub.ErrUnavailable) || !errors.Is(err, tc.errno) {
				t.Fatalf("an append on a failing disk: %v", err)
			}
			for i := 1; i < 3; i++ {
				if err := publish(fmt.Sprint("b", i)); !errors.Is(err, hub.ErrUnavailable) {
					t.Fatalf("an append after a failed commit: %v", err)
				}
			}
			if err := l.Healthy(); !errors.Is(err, hub.ErrUnavailable) || !strings.Contains(err.Error(), tc.healthMsg) {
				t.Fatalf("Healthy after a failed commit: %v", err)
			}
			// Reads of what was acknowledged go on.
			if evs, err := l.Read(ctx, 1, 10); err != nil || len(evs) != 3 {
				t.Fatalf("read %d events after a fault: %v", len(evs), err)
			}

			if tc.recovers {
				// While the fault lasts, the attempts to recover fail.
				<-logs.Attempts
				if err := l.Healthy(); err == nil {
					t.Fatal("recovered while the disk still fails")
				}
			} else if n := logs.Count("restarted"); n != 1 {
				t.Fatalf("%d error lines say that herald must be restarted: %q", n, logs.Errors())
			}
			fs.clear()
			if tc.recovers {
				waitHealthy(t, l)
				for i := range 3 {
					if err := publish(fmt.Sprint("c", i)); err != nil {
						t.Fatalf("an append after recovery: %v", err)
					}
				}
			} else if err := publish("c0"); !errors.Is(err, hub.ErrUnavailable) {
				t.Fatalf("an append after an I/O error, fixed: %v", err)
			}
			if err := l.Close(); err != nil {
				t.Logf("close: %v", err) // Pebble may report the failed log again
			}

			l = open(t, pebblestore.Config{Dir: dir})
			defer l.Close()
			faulttest.CheckAcked(t, l, acked)
		})
	}
}
