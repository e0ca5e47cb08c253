package protocol

import (
	"encoding/hex"
	"fmt"
)

// A P2P link (xtcp, xudp) is one conversation between a visitor and an
// owner whose packets travel over the server's relay and, once punched,
// over a direct path. Its relay is a sealed stream (pkg/visit) on which the
// first record each way is one of these, then the link's packets, one per
// record:
//
//	visitor → owner  LinkHello:  "HOPL" version(1)=1 flags(1) linkID(16)
//	                 flags bit 0: resume (the visitor has used this link
//	                 before; the owner must know it), other bits 0
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
}

// Link status codes.
const (
	LinkOK      = 0
	LinkUnknown = 1
)

const (
	linkMagic     = "HOPL"
	linkVersion   = 1
	linkHelloLen  = 4 + 1 + 1 + LinkIDLen
	linkStatusLen = 4 + 1 + 1
	linkResume    = 1
)

// Encode returns the record.
func (h LinkHello) Encode() []byte {
	b := make([]byte, 0, linkHelloLen)
	b = append(b, linkMagic...)
	b = append(b, linkVersion, 0)
	if h.Resume {
		b[5] = linkResume
	}
	return append(b, h.ID[:]...)
}

// DecodeLinkHello parses the visitor's first record.
func DecodeLinkHello(b []byte) (LinkHello, error) {
	var h LinkHello
	if err := checkLinkRecord(b, linkHelloLen); err != nil {
		return h, err
	}
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
	if err := checkLinkRecord(b, linkStatusLen); err != nil {
		return 0, err
	}
	if b[5] > LinkUnknown {
		return 0, fmt.Errorf("%w: link status %d", ErrMalformed, b[5])
	}
	return b[5], nil
}

func checkLinkRecord(b []byte, n int) error {
	switch {
	case len(b) < 5 || string(b[:4]) != linkMagic:
		return fmt.Errorf("%w: not a link record (a peer that predates relay-first links? upgrade both hopc)", ErrMalformed)
	case b[4] != linkVersion:
		return fmt.Errorf("%w: link record version %d, this hopc speaks %d (upgrade the older hopc)", ErrMalformed, b[4], linkVersion)
	case len(b) != n:
		return fmt.Errorf("%w: link record of %d bytes, want %d", ErrMalformed, len(b), n)
	}
	return nil
}
