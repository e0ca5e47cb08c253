package stunserver

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/pion/stun/v3"
)

const (
	software = "hop"
	// maxRequest is the largest request answered; real Binding requests
	// are well under 200 bytes.
	maxRequest = 1024
	// maxDatagram is the read buffer: a datagram that fills it is longer
	// than maxRequest and is dropped.
	maxDatagram = maxRequest + 1
	// maxUnknown caps UNKNOWN-ATTRIBUTES in a 420 response.
	maxUnknown = 8

	headerSize  = 20
	magicCookie = 0x2112A442

	// CHANGE-REQUEST flags (RFC 5780 §7.2).
	changeIPFlag   = 0x04
	changePortFlag = 0x02
)

// AttrRespondAfter is hop's RESPOND-AFTER attribute (comprehension-
// optional; see the package doc and docs/PROTOCOL.md): a 4-byte big-endian
// number of milliseconds, 1 to MaxRespondAfter, after which the server
// sends its one answer to the request. A STUN server that does not know
// it answers at once.
const AttrRespondAfter stun.AttrType = 0xC0D0

// MaxRespondAfter is the longest delay RESPOND-AFTER may ask for.
const MaxRespondAfter = 10 * time.Minute

// handler turns requests into responses. It holds no sockets, so the fuzz
// target can drive it directly.
type handler struct {
	addrs    [numSlots]netip.AddrPort // zero where there is no socket
	software string
}

// other returns the slot reported as OTHER-ADDRESS to a request that
// arrived on slot: differing in address and port when there is an
// alternate address, in port only otherwise.
func (h *handler) other(slot int) (int, bool) {
	if !h.addrs[slotAltPort].IsValid() {
		return 0, false
	}
	if h.addrs[slotAltAddr].IsValid() {
		return slot ^ (slotAltAddr | slotAltPort), true
	}
	return slot ^ slotAltPort, true
}

// handle answers the datagram req that arrived from from on socket slot in.
// It returns the response and the slot of the socket to send it from, or
// ok false to send nothing. It never answers with more bytes than req has:
// a request shorter than its answer is dropped (hop's client pads its
// requests with PADDING; see the package doc).
//
// delay is how long to wait before sending resp (RESPOND-AFTER), 0 for at
// once; it is never more than MaxRespondAfter, and never set on an error
// response.
func (h *handler) handle(req []byte, from netip.AddrPort, in int) (resp []byte, out int, delay time.Duration, ok bool) {
	resp, out, delay, ok = h.answer(req, from, in, false)
	if !ok || len(resp) > len(req) {
		return nil, 0, 0, false
	}
	return resp, out, delay, true
}

// answer builds the response to req. stream is true for a request that
// came over TCP (see stream.go): it is answered on its own connection, so
// CHANGE-REQUEST cannot be honoured (420), and RESPONSE-ORIGIN and
// OTHER-ADDRESS, which name UDP sockets, are left out; so is RESPOND-AFTER
// (400: a delayed answer is a UDP mapping probe).
func (h *handler) answer(req []byte, from netip.AddrPort, in int, stream bool) (resp []byte, out int, delay time.Duration, ok bool) {
	if !validRequest(req) || !from.IsValid() || from.Port() == 0 || from.Addr().IsUnspecified() {
		return nil, 0, 0, false
	}
	m := &stun.Message{Raw: req}
	if m.Decode() != nil || m.Type != stun.BindingRequest {
		return nil, 0, 0, false
	}
	if m.Contains(stun.AttrFingerprint) && stun.Fingerprint.Check(m) != nil {
		return nil, 0, 0, false
	}

	var (
		change  []byte
		changes int
		after   []byte
		afters  int
		unknown stun.UnknownAttributes
	)
	for _, a := range m.Attributes {
		switch {
		case a.Type == AttrRespondAfter:
			after = a.Value
			afters++
		case a.Type >= 0x8000: // comprehension-optional
		case a.Type == stun.AttrChangeRequest:
			change = a.Value
			changes++
		case a.Type == stun.AttrUsername, a.Type == stun.AttrMessageIntegrity,
			a.Type == stun.AttrMessageIntegritySHA256:
			// No authentication here: nothing to check.
		case a.Type == stun.AttrPadding:
			// What makes the request as long as the answer (see
			// noAmplification); the response is not padded in turn.
		default:
			if len(unknown) < maxUnknown && !slices.Contains(unknown, a.Type) {
				unknown = append(unknown, a.Type)
			}
		}
	}
	if len(unknown) > 0 {
		return h.errorResponse(m, in, 420, "unknown comprehension-required attribute", unknown)
	}
	if afters > 0 {
		if stream {
			return h.errorResponse(m, in, 400, "RESPOND-AFTER is not supported over TCP", nil)
		}
		var ok bool
		if delay, ok = decodeRespondAfter(after); !ok || afters > 1 {
			return h.errorResponse(m, in, 400, "malformed RESPOND-AFTER: want one 4-byte count of 1 to 600000 ms", nil)
		}
	}

	out = in
	if changes > 0 && stream {
		return h.errorResponse(m, in, 420, "CHANGE-REQUEST is not supported over TCP",
			stun.UnknownAttributes{stun.AttrChangeRequest})
	}
	if changes > 0 {
		if changes > 1 || len(change) != 4 {
			return h.errorResponse(m, in, 400, "malformed CHANGE-REQUEST", nil)
		}
		flags := change[3]
		if flags&changeIPFlag != 0 {
			out ^= slotAltAddr
			if !h.addrs[out].IsValid() {
				return h.errorResponse(m, in, 420, "cannot change IP: no alternate address",
					stun.UnknownAttributes{stun.AttrChangeRequest})
			}
		}
		if flags&changePortFlag != 0 {
			out ^= slotAltPort
			if !h.addrs[out].IsValid() {
				return h.errorResponse(m, in, 420, "cannot change port: no alternate port",
					stun.UnknownAttributes{stun.AttrChangeRequest})
			}
		}
	}

	src := from.Addr().Unmap()
	ip := net.IP(src.AsSlice())
	port := int(from.Port())
	setters := []stun.Setter{
		stun.BindingSuccess,
		stun.NewTransactionIDSetter(m.TransactionID),
		&stun.XORMappedAddress{IP: ip, Port: port},
		&stun.MappedAddress{IP: ip, Port: port},
	}
	if stream {
		setters = append(setters, stun.NewSoftware(h.software))
		r, err := stun.Build(setters...)
		if err != nil {
			return nil, 0, 0, false
		}
		return r.Raw, in, 0, true
	}
	if origin := h.addrs[out]; !origin.Addr().IsUnspecified() {
		setters = append(setters, &stun.ResponseOrigin{IP: origin.Addr().AsSlice(), Port: int(origin.Port())})
	}
	if o, ok := h.other(in); ok { // relative to where the client sent to (RFC 5780 §7.4)
		a := h.addrs[o]
		setters = append(setters, &stun.OtherAddress{IP: a.Addr().AsSlice(), Port: int(a.Port())})
	}
	setters = append(setters, stun.NewSoftware(h.software))
	r, err := stun.Build(setters...)
	if err != nil {
		return nil, 0, 0, false
	}
	return r.Raw, out, delay, true
}

// refuseDelayed answers req, a valid request with RESPOND-AFTER that
// handle accepted, with error 486 at once: too many delayed answers are
// waiting. Like handle, it never answers with more bytes than req has.
func (h *handler) refuseDelayed(req []byte, in int) ([]byte, int, bool) {
	m := &stun.Message{Raw: req}
	if m.Decode() != nil {
		return nil, 0, false
	}
	resp, out, _, ok := h.errorResponse(m, in, 486, "too many delayed answers waiting; try later", nil)
	if !ok || len(resp) > len(req) {
		return nil, 0, false
	}
	return resp, out, true
}

// decodeRespondAfter decodes a RESPOND-AFTER value: exactly 4 bytes, a
// count of milliseconds from 1 to MaxRespondAfter.
func decodeRespondAfter(v []byte) (time.Duration, bool) {
	if len(v) != 4 {
		return 0, false
	}
	d := time.Duration(binary.BigEndian.Uint32(v)) * time.Millisecond
	if d <= 0 || d > MaxRespondAfter {
		return 0, false
	}
	return d, true
}

// errorResponse builds a Binding error response to req, sent back from the
// socket it arrived on.
func (h *handler) errorResponse(req *stun.Message, in, code int, reason string, unknown stun.UnknownAttributes) ([]byte, int, time.Duration, bool) {
	setters := []stun.Setter{
		stun.BindingError,
		stun.NewTransactionIDSetter(req.TransactionID),
		stun.ErrorCodeAttribute{Code: stun.ErrorCode(code), Reason: []byte(reason)},
	}
	if len(unknown) > 0 {
		setters = append(setters, unknown)
	}
	setters = append(setters, stun.NewSoftware(h.software))
	r, err := stun.Build(setters...)
	if err != nil {
		return nil, 0, 0, false
	}
	return r.Raw, in, 0, true
}

// validRequest checks the fixed header of an RFC 5389 message: size, the two
// zero bits, the magic cookie, and a length that is a multiple of 4 and
// matches the datagram exactly.
func validRequest(b []byte) bool {
	if len(b) < headerSize || len(b) > maxRequest || b[0]&0xC0 != 0 {
		return false
	}
	if binary.BigEndian.Uint32(b[4:8]) != magicCookie {
		return false
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	return n%4 == 0 && n == len(b)-headerSize
}
