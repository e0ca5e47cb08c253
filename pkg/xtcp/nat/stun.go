package nat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode"

	"github.com/pion/stun/v3"
)

const (
	headerSize  = 20
	magicCookie = 0x2112A442

	// CHANGE-REQUEST flags (RFC 5780 §7.2).
	changeIPFlag   = 0x04
	changePortFlag = 0x02

	familyIPv4 = 0x01
	familyIPv6 = 0x02

	// maxReason caps the ERROR-CODE reason kept from a response.
	maxReason = 128
)

// RequestSize is the size every Binding request is padded to with a
// PADDING attribute (RFC 5780 §7.6): hop's STUN server never answers with
// more bytes than the request carried, and its longest answer (IPv6, with
// RESPONSE-ORIGIN and OTHER-ADDRESS) is 124 bytes.
const RequestSize = 128

// errNotOurs is returned by parseResponse for anything that is not a
// well-formed Binding response to the transaction asked about.
var errNotOurs = errors.New("not a Binding response to this transaction")

// newRequest returns a Binding request with a fresh transaction ID and,
// if changeIP or changePort, a CHANGE-REQUEST.
func newRequest(changeIP, changePort bool) (txid [stun.TransactionIDSize]byte, raw []byte) {
	setters := []stun.Setter{stun.BindingRequest, stun.TransactionID}
	if changeIP || changePort {
		var v [4]byte
		if changeIP {
			v[3] |= changeIPFlag
		}
		if changePort {
			v[3] |= changePortFlag
		}
		setters = append(setters, rawAttr{stun.AttrChangeRequest, v[:]})
	}
	setters = append(setters, PadTo(RequestSize))
	m := stun.MustBuild(setters...)
	return m.TransactionID, m.Raw
}

// PadTo is a stun.Setter that adds a PADDING attribute making the message
// size bytes long, if it is shorter (to a multiple of 4 at most size). Add
// it after every other attribute but FINGERPRINT.
type PadTo int

// AddTo implements stun.Setter.
func (p PadTo) AddTo(m *stun.Message) error {
	n := (int(p) - headerSize - int(m.Length) - 4) &^ 3
	if n > 0 {
		m.Add(stun.AttrPadding, make([]byte, n))
	}
	return nil
}

type rawAttr struct {
	typ stun.AttrType
	v   []byte
}

func (r rawAttr) AddTo(m *stun.Message) error { m.Add(r.typ, r.v); return nil }

// response is what Discover keeps of a Binding response.
type response struct {
	success bool
	mapped  netip.AddrPort // success: XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS
	origin  netip.AddrPort // RESPONSE-ORIGIN if present and well formed
	other   netip.AddrPort // OTHER-ADDRESS if present and well formed
	code    int            // error response: ERROR-CODE
	reason  string         // error response: reason phrase, sanitised
}

// parseResponse decodes b as a response to the Binding request txid. It
// accepts a success response with a usable mapped address or an error
// response with an ERROR-CODE, and returns errNotOurs (wrapped) for
// anything else: another transaction, a request, a malformed message.
func parseResponse(b []byte, txid [stun.TransactionIDSize]byte) (response, error) {
	var r response
	if len(b) < headerSize || b[0]&0xC0 != 0 || binary.BigEndian.Uint32(b[4:8]) != magicCookie {
		return r, errNotOurs
	}
	if n := int(binary.BigEndian.Uint16(b[2:4])); n%4 != 0 || n != len(b)-headerSize {
		return r, errNotOurs
	}
	if [stun.TransactionIDSize]byte(b[8:headerSize]) != txid {
		return r, errNotOurs
	}
	m := &stun.Message{Raw: b}
	if err := m.Decode(); err != nil {
		return r, fmt.Errorf("%w: %v", errNotOurs, err)
	}
	if m.Contains(stun.AttrFingerprint) && stun.Fingerprint.Check(m) != nil {
		return r, fmt.Errorf("%w: bad FINGERPRINT", errNotOurs)
	}
	switch m.Type {
	case stun.BindingSuccess:
		r.success = true
		var ok bool
		if v, err := m.Get(stun.AttrXORMappedAddress); err == nil {
			r.mapped, ok = decodeAddr(v, &txid)
		} else if v, err := m.Get(stun.AttrMappedAddress); err == nil {
			r.mapped, ok = decodeAddr(v, nil)
		}
		if !ok || r.mapped.Port() == 0 || r.mapped.Addr().IsUnspecified() {
			return response{}, fmt.Errorf("%w: no usable mapped address", errNotOurs)
		}
		if v, err := m.Get(stun.AttrResponseOrigin); err == nil {
			r.origin, _ = decodeAddr(v, nil)
		}
		if v, err := m.Get(stun.AttrOtherAddress); err == nil {
			r.other, _ = decodeAddr(v, nil)
		}
		return r, nil
	case stun.BindingError:
		v, err := m.Get(stun.AttrErrorCode)
		if err != nil || len(v) < 4 {
			return response{}, fmt.Errorf("%w: error response without ERROR-CODE", errNotOurs)
		}
		class, number := int(v[2]&0x07), int(v[3])
		if class < 3 || class > 6 || number > 99 {
			return response{}, fmt.Errorf("%w: error code %d%02d out of range", errNotOurs, class, number)
		}
		r.code = class*100 + number
		r.reason = sanitize(v[4:])
		return r, nil
	}
	return r, fmt.Errorf("%w: %v", errNotOurs, m.Type)
}

// decodeAddr decodes a MAPPED-ADDRESS style value, XOR-ed with the magic
// cookie and txid when txid is not nil. The value must have exactly the
// size of its family.
func decodeAddr(v []byte, txid *[stun.TransactionIDSize]byte) (netip.AddrPort, bool) {
	if len(v) < 4 {
		return netip.AddrPort{}, false
	}
	var key [16]byte
	if txid != nil {
		binary.BigEndian.PutUint32(key[:4], magicCookie)
		copy(key[4:], txid[:])
	}
	port := binary.BigEndian.Uint16(v[2:4]) ^ binary.BigEndian.Uint16(key[:2])
	var ip netip.Addr
	switch {
	case v[1] == familyIPv4 && len(v) == 8:
		var a [4]byte
		for i := range a {
			a[i] = v[4+i] ^ key[i]
		}
		ip = netip.AddrFrom4(a)
	case v[1] == familyIPv6 && len(v) == 20:
		var a [16]byte
		for i := range a {
			a[i] = v[4+i] ^ key[i]
		}
		ip = netip.AddrFrom16(a).Unmap()
	default:
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip, port), true
}

// sanitize makes an untrusted reason phrase safe to print: valid UTF-8,
// no control characters, at most maxReason bytes.
func sanitize(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if len(s) > maxReason {
		s = strings.ToValidUTF8(s[:maxReason], "")
	}
	return s
}
