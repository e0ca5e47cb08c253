package transport

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// notSentLowat bounds the bytes that may wait unsent in the kernel's
// socket buffer of the control connection. Without it the kernel queues
// megabytes of bulk data, and a heartbeat or mux ping written after them
// waits seconds on a slow link; with it, writers block in user space where
// yamux interleaves small control frames between data frames.
const notSentLowat = 128 << 10

// control tunes a control-connection socket before connect/listen.
func control(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, notSentLowat)
	})
	if err != nil {
		return err
	}
	return serr
}
