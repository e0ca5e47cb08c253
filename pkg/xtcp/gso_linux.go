package xtcp

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gsoOOB returns the control message that makes the kernel split one
// sent buffer into UDP datagrams of size bytes (UDP generic segmentation
// offload, Linux 4.18+): one trip through the network stack for up to 64
// packets.
func gsoOOB(size int) []byte {
	b := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], uint16(size))
	return b
}

const gsoSupported = true
