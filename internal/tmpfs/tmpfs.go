//go:build linux

// Package tmpfs mounts small tmpfs filesystems for tests of what a full
// disk does: a history on one, and a ballast file that fills it up to the
// last byte, then is removed to give the room back.
package tmpfs

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// Mount mounts a tmpfs of size bytes on a new directory and returns it; it
// is unmounted when the test ends. Mounting needs root (CAP_SYS_ADMIN): the
// test fails, and says so, without it.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV,
		"size="+strconv.FormatInt(size, 10)+",mode=0700"); err != nil {
		t.Fatalf("mount a tmpfs (the fault tests need root): %v", err)
	}
	t.Cleanup(func() {
		// A lazy unmount: a process of the test that still holds a file
		// there does not keep it mounted once it exits.
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount the tmpfs: %v", err)
		}
	})
	return dir
}

// Fill writes a ballast file in dir until the filesystem is full, and
// returns its path: removing it gives the room back.
func Fill(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "ballast")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			return path
		}
	}
}
