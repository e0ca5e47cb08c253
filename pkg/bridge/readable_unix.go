//go:build unix

package bridge

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// waitReadable blocks until the socket has data or an end to report,
// without reading any: it peeks one byte without waiting, and otherwise
// lets the runtime's poller wait for the socket to become readable; once
// the poller says so it returns without a second peek (a spurious wakeup
// only means the Read that follows blocks). A socket error (a reset) is
// returned here, since the peek consumed it.
func waitReadable(rc syscall.RawConn) error {
	var b [1]byte
	var serr error
	waited := false
	err := rc.Read(func(fd uintptr) bool {
		if waited {
			return true
		}
		waited = true
		_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch err {
		case unix.EAGAIN:
			return false // nothing yet: wait until readable, then peek again
		case nil:
			return true // data, or the end (a zero-byte peek)
		}
		serr = err
		return true
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("read: %w", serr)
	}
	return nil
}
