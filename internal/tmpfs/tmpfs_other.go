//go:build !linux

// Package tmpfs mounts small tmpfs filesystems for tests of what a full
// disk does. It needs Linux: elsewhere its functions fail the test.
package tmpfs

import "testing"

// Mount fails the test: mounting a tmpfs needs Linux.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	t.Fatal("tmpfs: mounting a tmpfs needs Linux")
	return ""
}

// Fill fails the test: see Mount.
func Fill(t testing.TB, dir string) string {
	t.Helper()
	t.Fatal("tmpfs: mounting a tmpfs needs Linux")
	return ""
}
