//go:build !unix

package bench

import "time"

// selfCPU returns 0: outside Unix the tool does not read its CPU time.
func selfCPU() time.Duration { return 0 }
