//go:build unix

package bench

import (
	"syscall"
	"time"
)

// selfCPU returns the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// killProcess kills the process pid with SIGKILL: a node that dies
// without a word, as in a crash.
func killProcess(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
