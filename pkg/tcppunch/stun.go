package tcppunch

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"

	"github.com/pion/stun/v3"
)

const (
	stunHeader   = 20
	stunMaxReply = 1024
	stunCookie   = 0x2112A442
)

// stunBinding sends one Binding request on rw and reads the answer.
func stunBinding(rw io.ReadWriter) (netip.AddrPort, error) {
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: building the request: %w", ErrSTUN, err)
	}
	if _, err := rw.Write(req.Raw); err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: sending the request: %w", ErrSTUN, err)
	}
	resp, err := readSTUN(rw)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return parseBindingResponse(resp, req.TransactionID)
}

// readSTUN reads one STUN message from a stream: the header, then the
// body of the length it gives, at most stunMaxReply bytes in all.
func readSTUN(r io.Reader) ([]byte, error) {
	var hdr [stunHeader]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: reading the answer: %w", ErrSTUN, err)
	}
	if hdr[0]&0xC0 != 0 || binary.BigEndian.Uint32(hdr[4:8]) != stunCookie {
		return nil, fmt.Errorf("%w: the answer is not STUN", ErrSTUN)
	}
	n := int(binary.BigEndian.Uint16(hdr[2:4]))
	if n%4 != 0 || stunHeader+n > stunMaxReply {
		return nil, fmt.Errorf("%w: answer body of %d bytes", ErrSTUN, n)
	}
	b := make([]byte, stunHeader+n)
	copy(b, hdr[:])
	if _, err := io.ReadFull(r, b[stunHeader:]); err != nil {
		return nil, fmt.Errorf("%w: reading the answer: %w", ErrSTUN, err)
	}
	return b, nil
}

// parseBindingResponse returns the XOR-MAPPED-ADDRESS of a Binding success
// for transaction tx (MAPPED-ADDRESS if there is no XOR one).
func parseBindingResponse(b []byte, tx [stun.TransactionIDSize]byte) (netip.AddrPort, error) {
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %w", ErrSTUN, err)
	}
	if m.TransactionID != tx {
		return netip.AddrPort{}, fmt.Errorf("%w: answer to another transaction", ErrSTUN)
	}
	if m.Type == stun.BindingError {
		var code stun.ErrorCodeAttribute
		code.GetFrom(m)
		return netip.AddrPort{}, fmt.Errorf("%w: error %d %s", ErrSTUN, code.Code, code.Reason)
	}
	if m.Type != stun.BindingSuccess {
		return netip.AddrPort{}, fmt.Errorf("%w: answer of type %v", ErrSTUN, m.Type)
	}
	var ip []byte
	var port int
	var x stun.XORMappedAddress
	if err := x.GetFrom(m); err == nil {
		ip, port = x.IP, x.Port
	} else {
		var a stun.MappedAddress
		if err := a.GetFrom(m); err != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: no mapped address in the answer", ErrSTUN)
		}
		ip, port = a.IP, a.Port
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok || port <= 0 || port > 65535 || addr.Unmap().IsUnspecified() {
		return netip.AddrPort{}, fmt.Errorf("%w: mapped address %v port %d", ErrSTUN, ip, port)
	}
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}
