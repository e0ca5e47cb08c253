package protocol

import "fmt"

// The visit handshake: after Visit, the visitor and the owner of a secret
// proxy run CPace (pkg/pake) keyed by the proxy's secretKey, end to end
// through the server's relay, with key confirmation both ways; sealed
// records (pkg/seal) follow. Values are part of the wire format: never
// renumber.
const (
	TypeVisitHello   Type = 52 // visitor → owner: session ID and CPace share
	TypeVisitAccept  Type = 53 // owner → visitor: CPace share and the owner's confirmation tag
	TypeVisitConfirm Type = 54 // visitor → owner: the visitor's confirmation tag; sealed records follow
)

// VisitSIDSize is the size of the visitor's random session ID.
const VisitSIDSize = 16

func init() {
	for t, n := range map[Type]string{TypeVisitHello: "VisitHello", TypeVisitAccept: "VisitAccept", TypeVisitConfirm: "VisitConfirm"} {
		typeNames[t] = n
	}
}

// VisitHello opens the visit handshake.
type VisitHello struct {
	SID   []byte `json:"sid"`   // VisitSIDSize random bytes of the visitor
	Share []byte `json:"share"` // the visitor's CPace share
}

// VisitAccept is the owner's share and proof that it knows the secret.
type VisitAccept struct {
	Share []byte `json:"share"`
	Tag   []byte `json:"tag"`
}

// VisitConfirm is the visitor's proof that it knows the secret.
type VisitConfirm struct {
	Tag []byte `json:"tag"`
	// Src (optional) is the visitor's local connection, "srcAddr
	// dstAddr" (the application's address and the visitor's bind
	// address), sealed under a key of the visit only the two ends know
	// (pkg/visit), for the owner's PROXY protocol header. At most
	// MaxVisitSrc bytes.
	Src []byte `json:"src,omitempty"`
}

// MaxVisitSrc bounds VisitConfirm.Src.
const MaxVisitSrc = 256

func (*VisitHello) Type() Type   { return TypeVisitHello }
func (*VisitAccept) Type() Type  { return TypeVisitAccept }
func (*VisitConfirm) Type() Type { return TypeVisitConfirm }

func (m *VisitHello) validate() error {
	if err := checkLen("sid", m.SID, VisitSIDSize); err != nil {
		return err
	}
	return checkLen("share", m.Share, ShareSize)
}

func (m *VisitAccept) validate() error {
	if err := checkLen("share", m.Share, ShareSize); err != nil {
		return err
	}
	return checkLen("tag", m.Tag, TagSize)
}

func (m *VisitConfirm) validate() error {
	if len(m.Src) == 0 {
		m.Src = nil // "src": "" is no src, as an omitted one
	}
	if len(m.Src) > MaxVisitSrc {
		return fmt.Errorf("src is %d bytes, at most %d", len(m.Src), MaxVisitSrc)
	}
	return checkLen("tag", m.Tag, TagSize)
}
