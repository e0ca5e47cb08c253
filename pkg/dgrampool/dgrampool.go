// Package dgrampool lends the buffers of hop's datagram relays (udp
// proxies on hops and hopc): a flow holds a buffer only while a datagram is
// in its hands, not while it waits for the next one, so an idle flow costs
// no 64 KiB buffer.
//
// Buffers come in two sizes: Small, for datagrams that fit a common MTU,
// and Large, for the largest datagram hop carries with its 2-byte length.
package dgrampool

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/hopproxy/hop/pkg/protocol"
)

const (
	// Small is the capacity of the small buffers.
	Small = 2 << 10
	// Large is the capacity of the large buffers: a length prefix and the
	// largest datagram.
	Large = 2 + protocol.MaxDatagram
)

var (
	small = sync.Pool{New: func() any { b := make([]byte, Small); return &b }}
	large = sync.Pool{New: func() any { b := make([]byte, Large); return &b }}
)

// Get returns a buffer of length n (at most Large) from the pool.
func Get(n int) *[]byte {
	p := &large
	if n <= Small {
		p = &small
	}
	bp := p.Get().(*[]byte)
	*bp = (*bp)[:n]
	return bp
}

// Put returns a buffer from Get. A buffer of another capacity is left to
// the garbage collector.
func Put(bp *[]byte) {
	switch cap(*bp) {
	case Small:
		small.Put(bp)
	case Large:
		large.Put(bp)
	}
}

// ReadDatagram reads one length-prefixed datagram (protocol.AppendDatagram)
// from r. It blocks for the prefix without holding a buffer, then reads the
// datagram into one from Get; the caller Puts it back.
func ReadDatagram(r io.Reader) (*[]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > protocol.MaxDatagram {
		return nil, fmt.Errorf("%w: datagram of %d bytes, at most %d", protocol.ErrFrameTooLarge, n, protocol.MaxDatagram)
	}
	bp := Get(n)
	if _, err := io.ReadFull(r, *bp); err != nil {
		Put(bp)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return bp, nil
}

// Framed returns a buffer holding d with its 2-byte length prefix, ready
// to write to a stream.
func Framed(d []byte) *[]byte {
	bp := Get(2 + len(d))
	binary.BigEndian.PutUint16(*bp, uint16(len(d)))
	copy((*bp)[2:], d)
	return bp
}
