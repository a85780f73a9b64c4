//go:build unix

package benchkit

import (
	"syscall"
	"time"
)

// cpuTime is the user+system CPU time of the whole process so far: the
// plugin, the agent code around it and the in-process API server.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
