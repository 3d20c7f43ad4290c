package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of the CPU times in /proc/PID/stat: 1/100 s on
// every Linux this tool runs on (sysconf(_SC_CLK_TCK)).
const clockTick = 10 * time.Millisecond

// ProcCPU returns the CPU time (user and system) the process pid has used.
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:]) // from field 3 on
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// procRSS returns the resident memory of the process pid, in bytes.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// hubCPU returns the CPU time the hub's processes have used; none is 0.
func hubCPU(pids []int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		d, err := ProcCPU(pid)
		if err != nil {
			return 0, err
		}
		total += d
	}
	return total, nil
}

// hubMemory returns the memory the hub's processes hold: the resident set
// of one process (VmRSS in /proc/PID/status), or the sum of the
// proportional sets of several (Pss in /proc/PID/smaps_rollup), which
// counts the pages they share once, as nginx's workers share nchan's
// memory zone.
func hubMemory(pids []int) (int64, error) {
	if len(pids) == 1 {
		return procRSS(pids[0])
	}
	var total int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			return 0, err
		}
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "Pss:"); ok {
				f := strings.Fields(rest)
				if len(f) == 2 && f[1] == "kB" {
					kb, err := strconv.ParseInt(f[0], 10, 64)
					if err != nil {
						return 0, err
					}
					total += kb << 10
					found = true
				}
			}
		}
		if !found {
			return 0, fmt.Errorf("/proc/%d/smaps_rollup: no Pss", pid)
		}
	}
	return total, nil
}
