//go:build unix

package fdlimit

import (
	"math"

	"golang.org/x/sys/unix"
)

// Current returns the process's limit on open files (RLIMIT_NOFILE's soft
// limit, which the Go runtime raises to the hard limit when the process
// starts), and false when there is no such limit: the limit is infinite or
// cannot be read.
func Current() (int, bool) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, false
	}
	n := uint64(rl.Cur) // int64 on some systems
	if n == uint64(unix.RLIM_INFINITY) || n > math.MaxInt32 {
		return 0, false
	}
	return int(n), true
}
