//go:build !unix

package bench

import (
	"errors"
	"time"
)

// selfCPU returns 0: outside Unix the tool does not read its CPU time.
func selfCPU() time.Duration { return 0 }

// killProcess fails: outside Unix the tool does not kill processes.
func killProcess(int) error { return errors.ErrUnsupported }
