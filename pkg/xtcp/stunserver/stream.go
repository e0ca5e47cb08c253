package stunserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// Errors of ServeStream; match them with errors.Is.
var (
	// ErrStreamRequest: the bytes on a TCP connection are not one STUN
	// Binding request within the size bound.
	ErrStreamRequest = errors.New("stunserver: not a STUN Binding request")
	// ErrRateLimited: the source IP is over Config.PerIPPerSecond.
	ErrRateLimited = errors.New("stunserver: source over its request rate")
)

// IsSTUNFirstByte reports whether b, the first byte a client sent on a TCP
// connection, starts a STUN message rather than a TLS handshake: STUN's
// first two bits are 0 (RFC 8489 §5), and a TLS handshake record starts
// with 0x16, which also has them 0, so 0x16 is TLS.
func IsSTUNFirstByte(b byte) bool { return b != 0x16 && b&0xC0 == 0 }

// readStreamRequest reads one STUN message from r: the 20-byte header, then
// exactly the body length it gives (RFC 8489 §6.2.2: over TCP a message is
// delimited by its own length field). A header that is not STUN, or a
// length over the bound, is refused before its body is read.
func readStreamRequest(r io.Reader) ([]byte, error) {
	var hdr [headerSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrStreamRequest, err)
	}
	if hdr[0]&0xC0 != 0 || binary.BigEndian.Uint32(hdr[4:8]) != magicCookie {
		return nil, fmt.Errorf("%w: no STUN header (first bits or magic cookie)", ErrStreamRequest)
	}
	n := int(binary.BigEndian.Uint16(hdr[2:4]))
	if n%4 != 0 || headerSize+n > maxRequest {
		return nil, fmt.Errorf("%w: body length %d (a multiple of 4, at most %d)", ErrStreamRequest, n, maxRequest-headerSize)
	}
	req := make([]byte, headerSize+n)
	copy(req, hdr[:])
	if _, err := io.ReadFull(r, req[headerSize:]); err != nil {
		return nil, fmt.Errorf("%w: body: %w", ErrStreamRequest, err)
	}
	return req, nil
}

// ServeStream answers the one STUN Binding request on c, a TCP connection
// whose first bytes a caller may already have read: r yields the whole
// stream from its first byte (pass c itself when nothing was read). The
// request and the answer must both be done by deadline. The success
// response carries XOR-MAPPED-ADDRESS, MAPPED-ADDRESS (both c's remote
// address: the client's public TCP mapping) and SOFTWARE; CHANGE-REQUEST
// gets 420, anything but a Binding request no answer. No padding rule
// applies (TCP's handshake has proved the source). The requests count
// against the same per-IP rate as UDP ones. It does not close c: the
// caller does, right after, so the server ends the connection first and
// the client's port is not held in TIME_WAIT.
func (s *Server) ServeStream(c net.Conn, r io.Reader, deadline time.Time) error {
	if err := c.SetDeadline(deadline); err != nil {
		return err
	}
	from, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return fmt.Errorf("stunserver: remote address %v: %w", c.RemoteAddr(), err)
	}
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	req, err := readStreamRequest(r)
	if err != nil {
		return err
	}
	if !validRequest(req) {
		return fmt.Errorf("%w: bad header", ErrStreamRequest)
	}
	resp, _, _, ok := s.h.answer(req, from, slotPrimary, true)
	if !ok {
		return fmt.Errorf("%w: not a Binding request, or unanswerable", ErrStreamRequest)
	}
	if !s.limit.allow(from.Addr(), time.Now()) {
		return fmt.Errorf("%w: %s", ErrRateLimited, from.Addr())
	}
	if _, err := c.Write(resp); err != nil {
		return fmt.Errorf("stunserver: answering %s over TCP: %w", from, err)
	}
	return nil
}
