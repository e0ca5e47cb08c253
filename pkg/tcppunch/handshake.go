package tcppunch

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hopproxy/hop/pkg/seal"
	"github.com/hopproxy/hop/pkg/xtcp"
)

// Wire constants (see the package doc).
const (
	magic     = "HOPT"
	version   = 1
	helloSize = 40
	proofSize = sha256.Size

	infoAuth  = "hop tcp v1 auth"
	infoProof = "hop tcp v1 proof"
	infoData  = "hop tcp v1 data " // + sending role + visitor nonce + owner nonce
)

// Record kinds inside a sealed record.
const (
	kindPacket   = 1
	kindPing     = 2
	kindPong     = 3
	kindNominate = 4
)

// hello is the first message of each side on a connection.
type hello struct {
	role    xtcp.Role
	session xtcp.SessionID
	nonce   [16]byte
}

func (h hello) encode() []byte {
	b := make([]byte, 0, helloSize)
	b = append(b, magic...)
	b = append(b, version, byte(h.role), 0, 0)
	b = append(b, h.session[:]...)
	return append(b, h.nonce[:]...)
}

// decodeHello parses a peer's hello; it does not judge the role or the
// session (handshake does).
func decodeHello(b []byte) (hello, error) {
	var h hello
	if len(b) != helloSize || string(b[:4]) != magic {
		return h, fmt.Errorf("%w: no hello (magic %q)", ErrHandshake, b[:min(4, len(b))])
	}
	if b[4] != version {
		return h, fmt.Errorf("%w: version %d, want %d", ErrHandshake, b[4], version)
	}
	if b[6] != 0 || b[7] != 0 {
		return h, fmt.Errorf("%w: reserved bytes %#x %#x", ErrHandshake, b[6], b[7])
	}
	h.role = xtcp.Role(b[5])
	if h.role != xtcp.RoleVisitor && h.role != xtcp.RoleOwner {
		return h, fmt.Errorf("%w: role %d", ErrHandshake, b[5])
	}
	copy(h.session[:], b[8:24])
	copy(h.nonce[:], b[24:40])
	return h, nil
}

func hkdfKey(key []byte, id xtcp.SessionID, info string, n int) []byte {
	k, err := hkdf.Key(sha256.New, key, id[:], info, n)
	if err != nil {
		panic(err) // only for n beyond 255*32
	}
	return k
}

// proof is the sender's proof of the key over both hellos.
func proof(key []byte, id xtcp.SessionID, sender xtcp.Role, visitorHello, ownerHello []byte) []byte {
	m := hmac.New(sha256.New, hkdfKey(key, id, infoAuth, 32))
	m.Write([]byte(infoProof))
	m.Write([]byte{byte(sender)})
	m.Write(visitorHello)
	m.Write(ownerHello)
	return m.Sum(nil)
}

func dataKey(key []byte, id xtcp.SessionID, sender xtcp.Role, vNonce, oNonce [16]byte) []byte {
	return hkdfKey(key, id, infoData+sender.String()+string(vNonce[:])+string(oNonce[:]), seal.KeySize)
}

func peerRole(r xtcp.Role) xtcp.Role {
	if r == xtcp.RoleVisitor {
		return xtcp.RoleOwner
	}
	return xtcp.RoleVisitor
}

// handshake authenticates conn as ours for (key, id, role) within deadline
// and returns it sealed. The owner also waits for the visitor's nominate
// record: it returns only the connection the visitor chose.
func handshake(conn net.Conn, key []byte, id xtcp.SessionID, role xtcp.Role, deadline time.Time) (*seal.Conn, error) {
	conn.SetDeadline(deadline)
	mine := hello{role: role, session: id}
	rand.Read(mine.nonce[:])
	mb := mine.encode()
	if _, err := conn.Write(mb); err != nil {
		return nil, fmt.Errorf("tcppunch: sending hello: %w", err)
	}
	pb := make([]byte, helloSize)
	if _, err := io.ReadFull(conn, pb); err != nil {
		return nil, fmt.Errorf("%w: reading the peer's hello: %w", ErrHandshake, err)
	}
	peer, err := decodeHello(pb)
	if err != nil {
		return nil, err
	}
	if peer.session != id {
		return nil, fmt.Errorf("%w: peer's session %v, ours %v", ErrSession, peer.session, id)
	}
	if peer.role == role {
		return nil, fmt.Errorf("%w: both sides are the %v", ErrRole, role)
	}
	vh, oh, vn, on := mb, pb, mine.nonce, peer.nonce
	if role == xtcp.RoleOwner {
		vh, oh, vn, on = pb, mb, peer.nonce, mine.nonce
	}
	if _, err := conn.Write(proof(key, id, role, vh, oh)); err != nil {
		return nil, fmt.Errorf("tcppunch: sending proof: %w", err)
	}
	got := make([]byte, proofSize)
	if _, err := io.ReadFull(conn, got); err != nil {
		return nil, fmt.Errorf("%w: reading the peer's proof: %w", ErrHandshake, err)
	}
	if !hmac.Equal(got, proof(key, id, peer.role, vh, oh)) {
		return nil, fmt.Errorf("%w (session %v)", ErrAuth, id)
	}
	sc, err := seal.New(conn, dataKey(key, id, role, vn, on), dataKey(key, id, peer.role, vn, on))
	if err != nil {
		return nil, err
	}
	if role == xtcp.RoleOwner {
		buf := make([]byte, 16)
		n, err := sc.ReadDatagram(buf)
		if err != nil {
			return nil, fmt.Errorf("tcppunch: waiting for the visitor's nominate: %w", err)
		}
		if kind, _, err := decodeRecord(buf[:n]); err != nil || kind != kindNominate {
			return nil, fmt.Errorf("%w: first record is not a nominate", ErrHandshake)
		}
	}
	conn.SetDeadline(time.Time{})
	return sc, nil
}

// decodeRecord splits the plaintext of a sealed record into its kind and
// body, checking the body size of each kind.
func decodeRecord(b []byte) (kind byte, body []byte, err error) {
	if len(b) == 0 {
		return 0, nil, fmt.Errorf("%w: empty", ErrRecord)
	}
	kind, body = b[0], b[1:]
	switch kind {
	case kindPacket:
		if len(body) > MaxPacket {
			return 0, nil, fmt.Errorf("%w: packet of %d bytes", ErrRecord, len(body))
		}
	case kindPing, kindPong:
		if len(body) != 8 {
			return 0, nil, fmt.Errorf("%w: keepalive body of %d bytes", ErrRecord, len(body))
		}
	case kindNominate:
		if len(body) != 0 {
			return 0, nil, fmt.Errorf("%w: nominate with a body", ErrRecord)
		}
	default:
		return 0, nil, fmt.Errorf("%w: kind %d", ErrRecord, kind)
	}
	return kind, body, nil
}

func keepaliveRecord(kind byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{kind}, seq)
}
