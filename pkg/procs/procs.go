// Package procs holds the process settings of hops and hopc: the size of
// the Go scheduler (Set) and what SIGHUP does (CatchHUP).
//
// A proxy's work is a pipeline of goroutine hand-offs (socket reader, mux
// send loop, TLS, the other socket's writer). With a P for every CPU, each
// hand-off tends to wake another OS thread on another CPU, which on a
// small machine shared with the services being proxied and the kernel's
// network stack costs more than it brings: measured on 2 cores, one P gave
// 1.8× the single-stream throughput and 30% less CPU per GB. So unless
// GOMAXPROCS is set in the environment, a proxy uses half of the CPUs the
// runtime would (which respects cgroup limits), at least one.
package procs

import (
	"os"
	"runtime"
)

// Set applies the default and returns the number of Ps in use and whether
// the environment chose it.
func Set() (n int, fromEnv bool) {
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0), true
	}
	n = max(1, runtime.GOMAXPROCS(0)/2)
	runtime.GOMAXPROCS(n)
	return n, false
}
