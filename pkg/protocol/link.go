package protocol

import (
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strconv"
)

// A P2P link (xtcp, xudp) is one conversation between a visitor and an
// owner whose packets travel over the server's relay and, once punched,
// over a direct path. Its relay is a sealed stream (pkg/visit) on which the
// first record each way is one of these, then the link's packets, one per
// record:
//
//	visitor → owner  LinkHello:  "HOPL" version(1)=2 flags(1) linkID(16)
//	                 flags bit 0: resume (the visitor has used this link
//	                 before; the owner must know it), other bits 0.
//	                 Version 2: every stream of an xtcp link starts with a
//	                 StreamHead; an owner takes version 1 (no heads) too.
//	owner → visitor  LinkStatus: "HOPL" version(1)=1 status(1)
//	                 status 0 ok, 1 unknown link (resume of a link the
//	                 owner does not have: it restarted)
//
// The link ID is random, chosen by the visitor; the owner keys its links
// by it together with the proxy and the visitor's identity, so a visitor
// can only ever reach its own links.

// LinkIDLen is the length of a link ID.
const LinkIDLen = 16

// LinkID names a link.
type LinkID [LinkIDLen]byte

// String is the ID in hex, as P2PInfo.Link carries it.
func (id LinkID) String() string { return hex.EncodeToString(id[:]) }

// ParseLinkID parses the hex form of a link ID.
func ParseLinkID(s string) (LinkID, error) {
	var id LinkID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != LinkIDLen {
		return id, fmt.Errorf("%w: link ID %q: want %d hex digits", ErrMalformed, s, 2*LinkIDLen)
	}
	copy(id[:], b)
	return id, nil
}

// LinkHello is the visitor's first record on a link's relay.
type LinkHello struct {
	ID     LinkID
	Resume bool
	// Heads says that every stream of the link starts with a StreamHead:
	// Encode writes version 2 with it, 1 without, and a version 1 hello
	// (an older visitor's) decodes with Heads false.
	Heads bool
}

// Link status codes.
const (
	LinkOK      = 0
	LinkUnknown = 1
)

const (
	linkMagic     = "HOPL"
	linkVersion   = 1 // of LinkStatus, and of a hello without stream heads
	linkHeads     = 2 // of a hello whose link's streams start with a StreamHead
	linkHelloLen  = 4 + 1 + 1 + LinkIDLen
	linkStatusLen = 4 + 1 + 1
	linkResume    = 1
)

// Encode returns the record.
func (h LinkHello) Encode() []byte {
	b := make([]byte, 0, linkHelloLen)
	b = append(b, linkMagic...)
	v := byte(linkVersion)
	if h.Heads {
		v = linkHeads
	}
	b = append(b, v, 0)
	if h.Resume {
		b[5] = linkResume
	}
	return append(b, h.ID[:]...)
}

// DecodeLinkHello parses the visitor's first record.
func DecodeLinkHello(b []byte) (LinkHello, error) {
	var h LinkHello
	if err := checkLinkRecord(b, linkHelloLen, linkHeads); err != nil {
		return h, err
	}
	h.Heads = b[4] == linkHeads
	if b[5]&^linkResume != 0 {
		return h, fmt.Errorf("%w: link hello flags %#x", ErrMalformed, b[5])
	}
	h.Resume = b[5]&linkResume != 0
	copy(h.ID[:], b[6:])
	return h, nil
}

// EncodeLinkStatus returns the owner's first record.
func EncodeLinkStatus(status byte) []byte {
	return append([]byte(linkMagic), linkVersion, status)
}

// DecodeLinkStatus parses the owner's first record.
func DecodeLinkStatus(b []byte) (byte, error) {
	if err := checkLinkRecord(b, linkStatusLen, linkVersion); err != nil {
		return 0, err
	}
	if b[5] > LinkUnknown {
		return 0, fmt.Errorf("%w: link status %d", ErrMalformed, b[5])
	}
	return b[5], nil
}

// checkLinkRecord checks the magic, a version from 1 to maxVersion and
// the length n.
func checkLinkRecord(b []byte, n int, maxVersion byte) error {
	switch {
	case len(b) < 5 || string(b[:4]) != linkMagic:
		return fmt.Errorf("%w: not a link record (a peer that predates relay-first links? upgrade both hopc)", ErrMalformed)
	case b[4] < linkVersion || b[4] > maxVersion:
		return fmt.Errorf("%w: link record version %d, this hopc speaks 1 to %d (upgrade the older hopc)", ErrMalformed, b[4], maxVersion)
	case len(b) != n:
		return fmt.Errorf("%w: link record of %d bytes, want %d", ErrMalformed, len(b), n)
	}
	return nil
}

// A StreamHead starts every stream of an xtcp link whose hello had Heads:
// the addresses of the visitor's application connection, so that the
// owner can give its local service the real client address (a PROXY
// protocol header, transport.proxyProtocolVersion):
//
//	len(1) src len(1) dst      each an IP:port in text, at most 64 bytes
//
// An address the visitor cannot name is sent empty.
const maxHeadAddr = 64

// EncodeStreamHead returns the head for src and dst; an address longer
// than a head holds, or not IP:port, is sent empty.
func EncodeStreamHead(src, dst string) []byte {
	b := make([]byte, 0, 2+len(src)+len(dst))
	for _, a := range []string{src, dst} {
		if len(a) > maxHeadAddr || !isAddrPort(a) {
			a = ""
		}
		b = append(b, byte(len(a)))
		b = append(b, a...)
	}
	return b
}

// ReadStreamHead reads a stream's head from r; an address that is not
// IP:port is an error (wrapping ErrMalformed).
func ReadStreamHead(r io.Reader) (src, dst string, err error) {
	var out [2]string
	var n [1]byte
	buf := make([]byte, maxHeadAddr)
	for i := range out {
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return "", "", fmt.Errorf("stream head: %w", err)
		}
		if n[0] > maxHeadAddr {
			return "", "", fmt.Errorf("%w: stream head address of %d bytes, at most %d", ErrMalformed, n[0], maxHeadAddr)
		}
		if _, err := io.ReadFull(r, buf[:n[0]]); err != nil {
			return "", "", fmt.Errorf("stream head: %w", err)
		}
		a := string(buf[:n[0]])
		if a != "" && !isAddrPort(a) {
			return "", "", fmt.Errorf("%w: stream head address %q is not IP:port", ErrMalformed, a)
		}
		out[i] = a
	}
	return out[0], out[1], nil
}

func isAddrPort(a string) bool {
	if a == "" {
		return true
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil || net.ParseIP(host) == nil {
		return false
	}
	_, err = strconv.ParseUint(port, 10, 16)
	return err == nil
}
