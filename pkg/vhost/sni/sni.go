// Package sni reads the server name (SNI, RFC 6066) from the ClientHello
// at the start of a TLS connection without terminating TLS, so that the
// connection can be routed by it and the bytes read replayed to the
// backend, which then does the handshake itself.
//
// Only what routing needs is parsed: TLS records of type handshake (the
// ClientHello may span several), the ClientHello's fixed fields, and its
// extensions up to server_name. Reading stops at MaxHelloBytes and at a
// deadline, so a slow or endless peer costs bounded time and memory.
package sni

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// MaxHelloBytes caps the length of a ClientHello (post-quantum key
// shares make hellos of 1.5-2 KB; 16 KB is the largest single record).
// Read stops after MaxWireBytes, which leaves room for the record headers
// of a hello split into small records.
const (
	MaxHelloBytes = 16 << 10
	MaxWireBytes  = 2 * MaxHelloBytes
)

// Errors of Parse and Read, wrapped with detail.
var (
	// ErrNotTLS: the first bytes are not a TLS handshake record.
	ErrNotTLS = errors.New("not a TLS handshake")
	// ErrMalformed: the ClientHello does not parse.
	ErrMalformed = errors.New("malformed TLS ClientHello")
	// ErrTooLarge: the ClientHello is longer than MaxHelloBytes.
	ErrTooLarge = errors.New("TLS ClientHello too large")
	// ErrNoServerName: a well-formed ClientHello without server_name.
	ErrNoServerName = errors.New("TLS ClientHello has no server name")
	// errShort: more bytes are needed (internal to Read).
	errShort = errors.New("short")
)

// Read reads from c until it holds a whole ClientHello (or fails), with
// deadline as c's read deadline (cleared before returning), and returns
// the server name and every byte read, to be replayed to the backend.
func Read(c net.Conn, deadline time.Time) (name string, prefix []byte, err error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return "", nil, err
	}
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, 0, 2048)
	for {
		if len(buf) == cap(buf) {
			if cap(buf) >= MaxWireBytes {
				return "", buf, fmt.Errorf("%w: no end after %d bytes", ErrTooLarge, len(buf))
			}
			nb := make([]byte, len(buf), min(2*cap(buf), MaxWireBytes))
			copy(nb, buf)
			buf = nb
		}
		n, rerr := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		name, err := Parse(buf)
		if !errors.Is(err, errShort) {
			return name, buf, err
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				rerr = fmt.Errorf("%w: connection closed after %d bytes", ErrMalformed, len(buf))
			}
			return "", buf, rerr
		}
	}
}

// Parse returns the server name of the ClientHello at the start of b.
// It returns an error wrapping ErrNotTLS, ErrMalformed, ErrTooLarge or
// ErrNoServerName; for a b that is a proper prefix of a ClientHello, an
// internal "short" error that Read waits on (use Read on a connection).
func Parse(b []byte) (string, error) {
	// Walk the record headers first (cheap, as Read calls Parse after
	// every read), and gather the handshake message once it is complete.
	var head []byte // the first 4 bytes of the handshake message
	need := -1      // its length with the 4-byte header, once known
	have := 0
	rest := b
	for {
		if len(rest) < 5 {
			return "", errShort
		}
		if rest[0] != 0x16 {
			return "", fmt.Errorf("%w: record type %d", ErrNotTLS, rest[0])
		}
		if rest[1] != 3 {
			return "", fmt.Errorf("%w: record version %d.%d", ErrNotTLS, rest[1], rest[2])
		}
		rl := int(rest[3])<<8 | int(rest[4])
		if rl == 0 || rl > 1<<14 {
			return "", fmt.Errorf("%w: record length %d", ErrMalformed, rl)
		}
		if len(rest) < 5+rl {
			return "", errShort
		}
		if len(head) < 4 {
			head = append(head, rest[5:5+min(rl, 4-len(head))]...)
		}
		have += rl
		rest = rest[5+rl:]
		if need < 0 && len(head) == 4 {
			if head[0] != 1 {
				return "", fmt.Errorf("%w: handshake type %d, not ClientHello", ErrMalformed, head[0])
			}
			need = 4 + (int(head[1])<<16 | int(head[2])<<8 | int(head[3]))
			if need > MaxHelloBytes {
				return "", fmt.Errorf("%w: %d bytes", ErrTooLarge, need)
			}
		}
		if need >= 0 && have >= need {
			break
		}
	}
	hs := make([]byte, 0, have)
	for r := b; len(hs) < need; {
		rl := int(r[3])<<8 | int(r[4])
		hs = append(hs, r[5:5+rl]...)
		r = r[5+rl:]
	}
	hs = hs[4:need]
	return serverName(hs)
}

// serverName parses a ClientHello body.
func serverName(h []byte) (string, error) {
	r := reader{b: h}
	r.skip(2 + 32)       // legacy_version, random
	r.skip(int(r.u8()))  // legacy_session_id
	r.skip(int(r.u16())) // cipher_suites
	r.skip(int(r.u8()))  // legacy_compression_methods
	if r.bad {
		return "", fmt.Errorf("%w: truncated fixed fields", ErrMalformed)
	}
	if len(r.b) == 0 {
		return "", ErrNoServerName // no extensions at all
	}
	exts := reader{b: r.bytes(int(r.u16()))}
	if r.bad {
		return "", fmt.Errorf("%w: truncated extensions", ErrMalformed)
	}
	for len(exts.b) > 0 {
		typ := exts.u16()
		data := exts.bytes(int(exts.u16()))
		if exts.bad {
			return "", fmt.Errorf("%w: truncated extension", ErrMalformed)
		}
		if typ != 0 {
			continue
		}
		list := reader{b: data}
		names := reader{b: list.bytes(int(list.u16()))}
		for len(names.b) > 0 && !names.bad {
			kind := names.u8()
			name := names.bytes(int(names.u16()))
			if names.bad {
				break
			}
			if kind == 0 {
				return checkName(name)
			}
		}
		if list.bad || names.bad {
			return "", fmt.Errorf("%w: truncated server_name", ErrMalformed)
		}
		return "", ErrNoServerName
	}
	return "", ErrNoServerName
}

// checkName accepts a host name of printable ASCII without spaces.
func checkName(n []byte) (string, error) {
	if len(n) == 0 || len(n) > 253 {
		return "", fmt.Errorf("%w: server name of %d bytes", ErrMalformed, len(n))
	}
	for _, c := range n {
		if c <= ' ' || c >= 0x7f {
			return "", fmt.Errorf("%w: server name has byte 0x%02x", ErrMalformed, c)
		}
	}
	return string(n), nil
}

// reader takes bytes off the front of b; a read past the end sets bad
// and yields zeros.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) bytes(n int) []byte {
	if r.bad || n > len(r.b) {
		r.bad = true
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) skip(n int) { r.bytes(n) }

func (r *reader) u8() uint8 {
	b := r.bytes(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u16() uint16 {
	b := r.bytes(2)
	if b == nil {
		return 0
	}
	return uint16(b[0])<<8 | uint16(b[1])
}
