// Package visit is the end-to-end handshake between the visitor and the
// owner of a secret proxy (stcp, sudp, and the relay of xtcp and
// xudp links), run through the server's relay after the visitor's Visit frame:
//
//	visitor → owner  VisitHello{sid, share_v}
//	owner → visitor  VisitAccept{share_o, tag_o}   (or Error)
//	visitor → owner  VisitConfirm{tag_v}            then sealed records both ways
//
// It is CPace (pkg/pake) keyed by the proxy's secretKey. The channel
// identifier binds the proxy's name and type and both identities — the
// visitor's user and client ID as the server vouches for them, and the
// owner's user — so a proof made for one proxy, visitor or owner is
// worthless for another. Each side confirms the key before it trusts the
// other: the visitor refuses an owner that cannot confirm (an impostor, or
// a wrong secret on either side), and the owner sends nothing but its share
// and tag before the visitor has confirmed. Whoever relays or watches the
// exchange learns nothing that lets it test guesses of the secret offline.
//
// The connection that Visitor and Owner return is sealed (pkg/seal) under
// keys from the ISK, one per direction. VisitorFrom also puts the address
// of the visitor's local connection in VisitConfirm, sealed under a key of
// its own from the ISK (used once), and OwnerFrom returns it: the owner's
// PROXY protocol header carries it, and the relay cannot read or change it.
package visit

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/hopproxy/hop/pkg/pake"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/seal"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrOwnerUnconfirmed: the owner could not prove it knows the secret
	// for this proxy and these identities.
	ErrOwnerUnconfirmed = errors.New("the proxy's owner could not prove it knows the secretKey for this proxy and these users (a different secretKey on the two sides, or an impostor owner)")
	// ErrVisitorUnconfirmed: the visitor could not prove it knows the secret.
	ErrVisitorUnconfirmed = errors.New("the visitor could not prove it knows the proxy's secretKey (a different secretKey on the two sides, or an impostor)")
	// ErrNoSecret: an empty secretKey, which config validation should
	// have refused.
	ErrNoSecret = errors.New("visit: empty secretKey")
)

// Timeout bounds each read of the handshake.
const Timeout = 10 * time.Second

const (
	channelLabel = "hop visit v1"
	sealLabel    = "hop visit seal v1"
	srcLabel     = "hop visit src v1" // key of VisitConfirm.Src, used once per visit
)

// Identity names who takes part in a visit. Both sides must agree on every
// field, or the handshake fails.
type Identity struct {
	Proxy       string // the proxy's name as its owner configured it
	ProxyType   string // stcp, sudp, xtcp or xudp
	VisitorUser string // the visitor's user, as the server vouches for it
	VisitorID   string // the visitor's client ID, as the server vouches for it
	OwnerUser   string // the owner's user
}

// Channel is the CPace channel identifier of id under label: every field,
// length-prefixed, so no two identities share one.
func (id Identity) Channel(label string) []byte {
	var b []byte
	for _, s := range []string{label, id.Proxy, id.ProxyType, id.VisitorUser, id.VisitorID, id.OwnerUser} {
		b = pake.AppendLV(b, []byte(s))
	}
	return b
}

// Visitor runs the visitor's side on conn, a stream to the server on which
// pre (the Visit frame) is sent first, in the same write as VisitHello. An
// *protocol.Error from the server or the owner is returned as is.
func Visitor(conn net.Conn, pre []byte, secret string, id Identity) (*seal.Conn, error) {
	return VisitorFrom(conn, pre, secret, id, "")
}

// VisitorFrom is Visitor that also sends src, the visitor's local
// connection as "srcAddr dstAddr" ("" sends none), sealed.
func VisitorFrom(conn net.Conn, pre []byte, secret string, id Identity, src string) (*seal.Conn, error) {
	if secret == "" {
		return nil, ErrNoSecret
	}
	sid := make([]byte, protocol.VisitSIDSize)
	rand.Read(sid)
	st := pake.Start(pake.Initiator, []byte(secret), id.Channel(channelLabel), sid, nil)
	hello, err := protocol.Encode(&protocol.VisitHello{SID: sid, Share: st.Share()})
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(append(pre, hello...)); err != nil {
		return nil, err
	}
	conn.SetReadDeadline(time.Now().Add(Timeout))
	acc, err := protocol.ReadAs[*protocol.VisitAccept](conn)
	conn.SetReadDeadline(time.Time{})
	if err != nil {
		return nil, err
	}
	isk, err := st.Finish(acc.Share, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOwnerUnconfirmed, err)
	}
	if !pake.Verify(isk, pake.Responder, acc.Tag) {
		return nil, ErrOwnerUnconfirmed
	}
	confirm := &protocol.VisitConfirm{Tag: pake.Confirm(isk, pake.Initiator)}
	if src != "" && len(src) <= protocol.MaxVisitSrc-chacha20poly1305.Overhead {
		aead, err := chacha20poly1305.New(pake.Key(isk, srcLabel, chacha20poly1305.KeySize))
		if err != nil {
			return nil, err
		}
		confirm.Src = aead.Seal(nil, make([]byte, aead.NonceSize()), []byte(src), nil)
	}
	if err := protocol.WriteMsg(conn, confirm); err != nil {
		return nil, err
	}
	send, recv := seal.Keys(isk, sealLabel, true)
	return seal.New(conn, send, recv)
}

// Owner runs the owner's side on conn, a stream the server opened for a
// visitor (after StartWork). The caller closes conn on an error.
func Owner(conn net.Conn, secret string, id Identity) (*seal.Conn, error) {
	sc, _, err := OwnerFrom(conn, secret, id)
	return sc, err
}

// OwnerFrom is Owner that also returns the visitor's local connection,
// "srcAddr dstAddr", when the visitor sent it ("" when not, as older
// visitors do). Src that does not open under the visit's key fails the
// handshake.
func OwnerFrom(conn net.Conn, secret string, id Identity) (*seal.Conn, string, error) {
	if secret == "" {
		return nil, "", ErrNoSecret
	}
	conn.SetReadDeadline(time.Now().Add(Timeout))
	defer conn.SetReadDeadline(time.Time{})
	hello, err := protocol.ReadAs[*protocol.VisitHello](conn)
	if err != nil {
		return nil, "", fmt.Errorf("read VisitHello: %w", err)
	}
	st := pake.Start(pake.Responder, []byte(secret), id.Channel(channelLabel), hello.SID, nil)
	isk, err := st.Finish(hello.Share, nil)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrVisitorUnconfirmed, err)
	}
	if err := protocol.WriteMsg(conn, &protocol.VisitAccept{Share: st.Share(), Tag: pake.Confirm(isk, pake.Responder)}); err != nil {
		return nil, "", err
	}
	conf, err := protocol.ReadAs[*protocol.VisitConfirm](conn)
	if err != nil {
		return nil, "", fmt.Errorf("read VisitConfirm: %w", err)
	}
	if !pake.Verify(isk, pake.Initiator, conf.Tag) {
		return nil, "", ErrVisitorUnconfirmed
	}
	var src string
	if len(conf.Src) > 0 {
		aead, err := chacha20poly1305.New(pake.Key(isk, srcLabel, chacha20poly1305.KeySize))
		if err != nil {
			return nil, "", err
		}
		b, err := aead.Open(nil, make([]byte, aead.NonceSize()), conf.Src, nil)
		if err != nil {
			return nil, "", fmt.Errorf("%w: its address does not open under the visit's key", ErrVisitorUnconfirmed)
		}
		src = string(b)
	}
	send, recv := seal.Keys(isk, sealLabel, false)
	sc, err := seal.New(conn, send, recv)
	return sc, src, err
}
