//go:build !linux

package transport

import "syscall"

// control is a no-op where TCP_NOTSENT_LOWAT is not available.
func control(_, _ string, _ syscall.RawConn) error { return nil }
