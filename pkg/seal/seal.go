// Package seal carries a connection's bytes end to end through relays that
// must not read or change them: every record is sealed with
// ChaCha20-Poly1305 under a key of its direction, with a counter nonce.
//
// hop uses it on the relayed path of secret proxies (stcp, sudp and the
// relay of xtcp and xudp links), keyed from the ISK of the visit
// handshake, so hops, which relays the stream, sees only ciphertext.
//
// Wire format (one record):
//
//	length  uint16 big-endian: bytes of the sealed body that follows (17 to MaxBody)
//	body    ChaCha20-Poly1305(key, nonce, plaintext, ad = length)
//	        plaintext = kind (1 byte: 0 data, 1 end) || data
//
// The nonce is the record's number in its direction, starting at 0, as a
// 96-bit big-endian integer; each side's keys are fresh per connection, so a
// nonce is never reused under a key. A record that fails authentication,
// arrives out of order, is dropped, or a stream that ends without the
// sender's end record ends the connection with an error (ErrAuth,
// ErrTruncated). An end record is how a half-close (CloseWrite) travels:
// Read returns io.EOF only after it.
//
// A Conn is used either as a byte stream (Read, Write, CloseWrite) or as a
// sequence of datagrams (WriteDatagram, ReadDatagram: one record each), not
// both.
package seal

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/hashicorp/yamux"
	"github.com/hopproxy/hop/pkg/bridge"
	"github.com/hopproxy/hop/pkg/pake"
	"golang.org/x/crypto/chacha20poly1305"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrAuth: a record did not open under the expected key and nonce —
	// the relay altered, reordered, dropped or injected data.
	ErrAuth = errors.New("seal: record failed authentication (altered, reordered or injected in transit)")
	// ErrTruncated: the underlying connection ended before the peer's end
	// record — the stream was cut short in transit.
	ErrTruncated = errors.New("seal: connection ended without the peer's authenticated end (truncated in transit)")
	// ErrRecord: a record header or kind that no sender writes.
	ErrRecord = errors.New("seal: malformed record")
	// ErrClosedWrite: Write after CloseWrite.
	ErrClosedWrite = errors.New("seal: write after CloseWrite")
	// ErrTooLarge: a datagram larger than MaxDatagram.
	ErrTooLarge = errors.New("seal: datagram too large")
	// ErrExhausted: 2^64 records under one key (never reached in practice).
	ErrExhausted = errors.New("seal: record counter exhausted")
)

// Sizes.
const (
	KeySize     = chacha20poly1305.KeySize
	Overhead    = 2 + 1 + chacha20poly1305.Overhead // header, kind and tag of a record
	MaxBody     = 65535                             // the largest sealed body
	MaxDatagram = MaxBody - 1 - chacha20poly1305.Overhead
	maxChunk    = 16 << 10 // plaintext per record of a byte stream
)

const (
	kindData = 0
	kindEnd  = 1
)

// Keys derives the two keys of a sealed connection from a PAKE ISK: the
// initiator (the visitor) sends under label+" i" and reads under
// label+" r"; the responder the other way round.
func Keys(isk []byte, label string, initiator bool) (send, recv []byte) {
	i, r := pake.Key(isk, label+" i", KeySize), pake.Key(isk, label+" r", KeySize)
	if initiator {
		return i, r
	}
	return r, i
}

// Conn is a net.Conn whose bytes are sealed records on the underlying one.
type Conn struct {
	net.Conn

	wmu    sync.Mutex
	send   cipher.AEAD
	wseq   uint64
	wended bool

	rmu   sync.Mutex
	recv  cipher.AEAD
	rseq  uint64
	rerr  error   // sticky: io.EOF after the end record, else why reading stopped
	rbuf  *[]byte // a pooled record buffer while it has unread plaintext
	rdata []byte  // the unread plaintext, inside *rbuf
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 2+MaxBody); return &b }}

// New seals c with the keys send (records this side writes) and recv
// (records it reads), each KeySize bytes.
func New(c net.Conn, send, recv []byte) (*Conn, error) {
	s, err := chacha20poly1305.New(send)
	if err != nil {
		return nil, fmt.Errorf("seal: send key: %w", err)
	}
	r, err := chacha20poly1305.New(recv)
	if err != nil {
		return nil, fmt.Errorf("seal: receive key: %w", err)
	}
	return &Conn{Conn: c, send: s, recv: r}, nil
}

func nonce(seq uint64) []byte {
	var n [chacha20poly1305.NonceSize]byte
	binary.BigEndian.PutUint64(n[4:], seq)
	return n[:]
}

// writeRecord seals one record; c.wmu must be held.
func (c *Conn) writeRecord(kind byte, data []byte) error {
	if c.wseq == ^uint64(0) {
		return ErrExhausted
	}
	n := 1 + len(data) + chacha20poly1305.Overhead
	bp := bufPool.Get().(*[]byte) // pooled: an idle conn holds no write buffer
	defer bufPool.Put(bp)
	b := binary.BigEndian.AppendUint16((*bp)[:0], uint16(n))
	pt := append(b[2:2], kind)
	pt = append(pt, data...)
	b = c.send.Seal(b[:2], nonce(c.wseq), pt, b[:2])
	c.wseq++
	_, err := c.Conn.Write(b)
	return err
}

// Write seals b as records of at most 16 KiB of plaintext.
func (c *Conn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wended {
		return 0, ErrClosedWrite
	}
	n := 0
	for len(b) > 0 {
		k := min(len(b), maxChunk)
		if err := c.writeRecord(kindData, b[:k]); err != nil {
			return n, err
		}
		n, b = n+k, b[k:]
	}
	return n, nil
}

// WriteDatagram seals d as one record.
func (c *Conn) WriteDatagram(d []byte) error {
	if len(d) > MaxDatagram {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(d), MaxDatagram)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wended {
		return ErrClosedWrite
	}
	return c.writeRecord(kindData, d)
}

type closeWriter interface{ CloseWrite() error }

// CloseWrite sends the authenticated end and half-closes the underlying
// connection (CloseWrite where it has one; Close on a yamux stream, which
// is a half-close there). Reading goes on until the peer's end.
func (c *Conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wended {
		return nil
	}
	c.wended = true
	if err := c.writeRecord(kindEnd, nil); err != nil {
		return err
	}
	if cw, ok := c.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// readRecord reads and opens the next record into a pooled buffer and
// returns the buffer and its plaintext data. c.rmu must be held.
func (c *Conn) readRecord() (*[]byte, []byte, error) {
	if c.rerr != nil {
		return nil, nil, c.rerr
	}
	// The header first, into a small array: an idle connection waits here
	// without holding a record buffer.
	var hdr [2]byte
	if _, err := io.ReadFull(c.Conn, hdr[:]); err != nil {
		switch {
		case errors.Is(err, io.EOF):
			err = ErrTruncated
		case errors.Is(err, io.ErrUnexpectedEOF):
			err = fmt.Errorf("%w (inside a record header)", ErrTruncated)
		}
		c.rerr = err
		return nil, nil, err
	}
	bp := bufPool.Get().(*[]byte)
	copy(*bp, hdr[:])
	data, err := c.open(*bp)
	if err != nil {
		bufPool.Put(bp)
		c.rerr = err
		return nil, nil, err
	}
	return bp, data, nil
}

// open reads the body of the record whose header is in buf[:2] and opens
// it in place.
func (c *Conn) open(buf []byte) ([]byte, error) {
	n := int(binary.BigEndian.Uint16(buf[:2]))
	if n < 1+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("%w: body of %d bytes", ErrRecord, n)
	}
	if _, err := io.ReadFull(c.Conn, buf[2:2+n]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w (inside a record)", ErrTruncated)
		}
		return nil, err
	}
	pt, err := c.recv.Open(buf[2:2], nonce(c.rseq), buf[2:2+n], buf[:2])
	if err != nil {
		return nil, fmt.Errorf("%w: record %d", ErrAuth, c.rseq)
	}
	c.rseq++
	switch pt[0] {
	case kindData:
		return pt[1:], nil
	case kindEnd:
		if len(pt) != 1 {
			return nil, fmt.Errorf("%w: end record with data", ErrRecord)
		}
		return nil, io.EOF
	}
	return nil, fmt.Errorf("%w: kind %d", ErrRecord, pt[0])
}

// Read returns plaintext; io.EOF only after the peer's end record.
func (c *Conn) Read(b []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(b) == 0 {
		return 0, nil
	}
	for len(c.rdata) == 0 {
		if c.rbuf != nil {
			c.release()
		}
		bp, data, err := c.readRecord()
		if err != nil {
			return 0, err
		}
		c.rbuf, c.rdata = bp, data
		if len(data) == 0 {
			continue // an empty data record: legal, carries nothing
		}
	}
	n := copy(b, c.rdata)
	c.rdata = c.rdata[n:]
	if len(c.rdata) == 0 {
		c.release()
	}
	return n, nil
}

func (c *Conn) release() {
	bufPool.Put(c.rbuf)
	c.rbuf, c.rdata = nil, nil
}

// ReadDatagram reads one record into buf and returns its length. A record
// larger than buf is an error (ErrTooLarge).
func (c *Conn) ReadDatagram(buf []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	bp, data, err := c.readRecord()
	if err != nil {
		return 0, err
	}
	defer bufPool.Put(bp)
	if len(data) > len(buf) {
		c.rerr = fmt.Errorf("%w: %d bytes into a buffer of %d", ErrTooLarge, len(data), len(buf))
		return 0, c.rerr
	}
	return copy(buf, data), nil
}

// Err is why reading stopped other than at the peer's end record
// (ErrAuth, ErrTruncated, ErrRecord or the underlying conn's error), or nil.
func (c *Conn) Err() error {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if errors.Is(c.rerr, io.EOF) {
		return nil
	}
	return c.rerr
}

// WaitReadable waits, without taking a buffer, until Read has something to
// return (data, the end, or an error).
func (c *Conn) WaitReadable() error {
	c.rmu.Lock()
	ready := len(c.rdata) > 0 || c.rerr != nil
	c.rmu.Unlock()
	if ready {
		return nil
	}
	switch u := c.Conn.(type) {
	case *yamux.Stream:
		u.Read(nil) // waits for data or the end, consumes nothing
	case bridge.ReadableWaiter:
		u.WaitReadable()
	}
	// Whatever the underlying conn said (data, end, error) is Read's to
	// report: an end without the peer's end record is a truncation.
	return nil
}
