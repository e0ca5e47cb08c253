package xtcp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"time"
)

// Control packets: the layout is in the package doc (doc.go).
const (
	ctlMagic   = "HOPP"
	ctlVersion = 1
	ctlMACLen  = 16
	ctlLen     = 68 // every control packet has exactly this size
	ctlMACOff  = ctlLen - ctlMACLen
)

// ctlType is the type byte of a control packet.
type ctlType uint8

const (
	ctlProbe        ctlType = 1
	ctlProbeAck     ctlType = 2
	ctlSelected     ctlType = 3
	ctlSelectedAck  ctlType = 4
	ctlKeepalive    ctlType = 5
	ctlKeepaliveAck ctlType = 6
	ctlClose        ctlType = 7
)

func (t ctlType) String() string {
	switch t {
	case ctlProbe:
		return "probe"
	case ctlProbeAck:
		return "probe-ack"
	case ctlSelected:
		return "selected"
	case ctlSelectedAck:
		return "selected-ack"
	case ctlKeepalive:
		return "keepalive"
	case ctlKeepaliveAck:
		return "keepalive-ack"
	case ctlClose:
		return "close"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ctlPacket is a decoded control packet.
type ctlPacket struct {
	Type      ctlType
	Session   SessionID
	Role      Role   // of the sender
	Seq       uint32 // the sender's sequence; an ack echoes the acked packet's
	Timestamp int64  // sender's clock, Unix nanoseconds
	Nonce     [16]byte
}

// isCtl reports whether b starts like a control packet, which is how a path
// tells control packets from data frames.
func isCtl(b []byte) bool { return len(b) >= 4 && string(b[:4]) == ctlMagic }

// parseCtl decodes the fields of a control packet without authenticating
// it. It is strict: exactly ctlLen bytes, the magic, version 1, a known
// type, a valid role and a zero reserved byte.
func parseCtl(b []byte) (ctlPacket, error) {
	var p ctlPacket
	if len(b) != ctlLen {
		return p, fmt.Errorf("%w: control packet of %d bytes, want %d", ErrMalformed, len(b), ctlLen)
	}
	if string(b[0:4]) != ctlMagic {
		return p, fmt.Errorf("%w: bad magic %q", ErrMalformed, b[0:4])
	}
	if b[4] != ctlVersion {
		return p, fmt.Errorf("%w: control packet version %d, want %d", ErrMalformed, b[4], ctlVersion)
	}
	p.Type = ctlType(b[5])
	if p.Type < ctlProbe || p.Type > ctlClose {
		return p, fmt.Errorf("%w: unknown control type %d", ErrMalformed, b[5])
	}
	copy(p.Session[:], b[6:22])
	p.Role = Role(b[22])
	if !p.Role.valid() {
		return p, fmt.Errorf("%w: bad role %d", ErrMalformed, b[22])
	}
	if b[23] != 0 {
		return p, fmt.Errorf("%w: reserved byte %d", ErrMalformed, b[23])
	}
	p.Seq = binary.BigEndian.Uint32(b[24:28])
	p.Timestamp = int64(binary.BigEndian.Uint64(b[28:36]))
	copy(p.Nonce[:], b[36:52])
	return p, nil
}

// ctlKey signs and checks the control packets of one session.
type ctlKey struct {
	session SessionID
	mac     []byte // HKDF(secret, session, "hop punch v1")
}

func newCtlKey(secret []byte, session SessionID) *ctlKey {
	return &ctlKey{session: session, mac: deriveKey(secret, session, infoPunch, keyLen)}
}

func (k *ctlKey) sum(b []byte) []byte {
	h := hmac.New(sha256.New, k.mac)
	h.Write(b)
	return h.Sum(nil)[:ctlMACLen]
}

// seal appends the encoded, authenticated packet to dst. Session, nonce
// and a zero timestamp are filled in.
func (k *ctlKey) seal(dst []byte, typ ctlType, role Role, seq uint32, now time.Time) []byte {
	off := len(dst)
	dst = append(dst, ctlMagic...)
	dst = append(dst, ctlVersion, byte(typ))
	dst = append(dst, k.session[:]...)
	dst = append(dst, byte(role), 0)
	dst = binary.BigEndian.AppendUint32(dst, seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(now.UnixNano()))
	var nonce [16]byte
	rand.Read(nonce[:])
	dst = append(dst, nonce[:]...)
	return append(dst, k.sum(dst[off:])...)
}

// open decodes b and checks its session and MAC. It does not check
// freshness: see ctlGuard.
func (k *ctlKey) open(b []byte) (ctlPacket, error) {
	p, err := parseCtl(b)
	if err != nil {
		return p, err
	}
	if p.Session != k.session {
		return p, fmt.Errorf("%w: %v", ErrWrongSession, p.Session)
	}
	if !hmac.Equal(k.sum(b[:ctlMACOff]), b[ctlMACOff:]) {
		return p, ErrBadMAC
	}
	return p, nil
}

// ctlGuard rejects authentic control packets that are reflected, stale or
// replayed. It remembers the nonce of every packet it accepted until its
// timestamp leaves the window, so a replay within the window is caught by
// the nonce and one after it by the timestamp.
type ctlGuard struct {
	self    Role
	maxSkew time.Duration

	mu   sync.Mutex
	seen map[[16]byte]int64 // nonce -> timestamp
}

// maxNonces bounds the nonce memory. Only authentic packets are
// remembered, so a peer would have to send more than this within twice the
// skew window to fill it; if one does, new packets are refused.
const maxNonces = 1 << 16

func newCtlGuard(self Role, maxSkew time.Duration) *ctlGuard {
	return &ctlGuard{self: self, maxSkew: maxSkew, seen: make(map[[16]byte]int64)}
}

// check accepts p at now, remembering its nonce, or says why not.
func (g *ctlGuard) check(p ctlPacket, now time.Time) error {
	if p.Role == g.self {
		return ErrReflected
	}
	n := now.UnixNano()
	skew := time.Duration(p.Timestamp - n)
	if p.Timestamp < n-int64(g.maxSkew) || p.Timestamp > n+int64(g.maxSkew) {
		return fmt.Errorf("%w: %v off our clock, allowed %v", ErrStale, skew.Round(time.Millisecond), g.maxSkew)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, dup := g.seen[p.Nonce]; dup {
		return ErrReplay
	}
	if len(g.seen) >= maxNonces/2 {
		for k, ts := range g.seen {
			if ts < n-int64(g.maxSkew) {
				delete(g.seen, k)
			}
		}
		if len(g.seen) >= maxNonces {
			return fmt.Errorf("%w: too many packets within the window", ErrReplay)
		}
	}
	g.seen[p.Nonce] = p.Timestamp
	return nil
}
