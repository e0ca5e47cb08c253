//go:build !unix

package bridge

import "syscall"

// waitReadable is a no-op where peeking is not available: Copy then reads
// at once.
func waitReadable(syscall.RawConn) error { return nil }
