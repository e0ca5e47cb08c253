package protocol

import (
	"encoding/binary"
	"fmt"
	"io"
)

// MaxDatagram is the largest UDP payload hop carries (the IPv4 maximum).
const MaxDatagram = 65507

// AppendDatagram appends a 2-byte big-endian length and the datagram.
func AppendDatagram(dst, d []byte) ([]byte, error) {
	if len(d) > MaxDatagram {
		return dst, fmt.Errorf("%w: datagram of %d bytes, at most %d", ErrFrameTooLarge, len(d), MaxDatagram)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(d)))
	return append(dst, d...), nil
}

// ReadDatagram reads one length-prefixed datagram into buf (which must hold
// MaxDatagram bytes) and returns its length.
func ReadDatagram(r io.Reader, buf []byte) (int, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > MaxDatagram || n > len(buf) {
		return 0, fmt.Errorf("%w: datagram of %d bytes, at most %d", ErrFrameTooLarge, n, min(MaxDatagram, len(buf)))
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	return n, nil
}
