//go:build linux

package boltstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/internal/tmpfs"
	"github.com/herald-sse/herald/store/boltstore"
	"github.com/herald-sse/herald/store/internal/faulttest"
	"golang.org/x/sys/unix"
)

// A commit that fails for want of room (a full tmpfs) fails its append
// with hub.ErrUnavailable, and every append after it at once; the log says
// it is unhealthy; once the room is back it takes appends again, with no
// restart; it closes; every acknowledged event is there after a reopen.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := tmpfs.Mount(t, 2<<20)
	path := filepath.Join(dir, "history.db")
	logs := faulttest.NewLogRecorder()
	l := open(t, boltstore.Config{Path: path, Logger: slog.New(logs)})
	var acked []string
	publish := func(id string) error {
		e := ev(id)
		e.Data = strings.Repeat("x", 16<<10)
		err := l.Append(ctx, e)
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

	ballast := tmpfs.Fill(t, dir)
	var err error
	for i := 0; err == nil; i++ {
		if i == 1000 {
			t.Fatal("1,000 appends on a full disk succeeded")
		}
		err = publish(fmt.Sprint("b", i))
	}
	if !errors.Is(err, hub.ErrUnavailable) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("an append on a full disk: %v", err)
	}
	if err := publish("b-after"); !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("an append after a failed commit: %v", err)
	}
	if err := l.Healthy(); !errors.Is(err, hub.ErrUnavailable) || !strings.Contains(err.Error(), "it retries") {
		t.Fatalf("Healthy on a full disk: %v", err)
	}
	<-logs.Attempts // an attempt to recover, which failed
	if err := l.Healthy(); err == nil {
		t.Fatal("recovered on a full disk")
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	for l.Healthy() != nil {
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 3 {
		if err := publish(fmt.Sprint("c", i)); err != nil {
			t.Fatalf("an append once there is room: %v", err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open(t, boltstore.Config{Path: path})
	defer l.Close()
	faulttest.CheckAcked(t, l, acked)
}

// A commit that fails otherwise (here the file's descriptor turns
// read-only: EBADF, as an I/O error would) is not retried: appends fail at
// once, the log says to restart herald, and it closes. A restart has every
// acknowledged event.
func TestWriteError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "history.db")
	var file *os.File
	logs := faulttest.NewLogRecorder()
	l := open(t, boltstore.WithOpenFile(boltstore.Config{Path: path, Logger: slog.New(logs)}, func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		file = f
		return f, err
	}))
	swap := func(flag int) {
		t.Helper()
		f, err := os.OpenFile(path, flag, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := unix.Dup3(int(f.Fd()), int(file.Fd()), unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
	}
	acked := []string{"a0", "a1"}
	appendIDs(t, l, acked...)

	swap(os.O_RDONLY)
	if err := l.Append(ctx, ev("b0")); !errors.Is(err, hub.ErrUnavailable) || !errors.Is(err, syscall.EBADF) {
		t.Fatalf("an append that cannot be written: %v", err)
	}
	swap(os.O_RDWR)
	if err := l.Append(ctx, ev("b1")); !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("an append after a failed commit: %v", err)
	}
	if err := l.Healthy(); !errors.Is(err, hub.ErrUnavailable) || !strings.Contains(err.Error(), "restart herald") {
		t.Fatalf("Healthy after a write error: %v", err)
	}
	if n := logs.Count("restarted"); n != 1 {
		t.Fatalf("%d error lines say that herald must be restarted: %q", n, logs.Errors())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open(t, boltstore.Config{Path: path})
	defer l.Close()
	faulttest.CheckAcked(t, l, acked)
}
