//go:build !unix

package fdlimit

// Current returns false: outside Unix there is no per-process limit on
// open files to read.
func Current() (int, bool) { return 0, false }
