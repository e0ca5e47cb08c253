package portmap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// NAT-PMP wire format (RFC 6886). All fields are in network byte order.
//
//	external address request:  version(1)=0 opcode(1)=0
//	external address response: version(1)=0 opcode(1)=128 result(2) epoch(4) address(4)
//	mapping request:           version(1)=0 opcode(1)=1 udp|2 tcp reserved(2)
//	                           internal port(2) suggested external port(2) lifetime(4)
//	mapping response:          version(1)=0 opcode(1)=128+op result(2) epoch(4)
//	                           internal port(2) mapped external port(2) lifetime(4)
const (
	pmpVersion     = 0
	pmpOpExternal  = 0
	pmpOpMapUDP    = 1
	pmpOpMapTCP    = 2
	pmpReplyBit    = 128
	pmpExternalLen = 12
	pmpMapLen      = 16
	pmpMinReplyLen = 8 // version, opcode, result, epoch: enough for an error
)

// NAT-PMP result codes (RFC 6886 section 3.5).
const (
	pmpSuccess            = 0
	pmpUnsupportedVersion = 1
	pmpNotAuthorized      = 2
	pmpNetworkFailure     = 3
	pmpOutOfResources     = 4
	pmpUnsupportedOpcode  = 5
)

var pmpResultText = map[uint16]string{
	pmpUnsupportedVersion: "unsupported version",
	pmpNotAuthorized:      "not authorized/refused",
	pmpNetworkFailure:     "network failure",
	pmpOutOfResources:     "out of resources",
	pmpUnsupportedOpcode:  "unsupported opcode",
}

// pmpResponse is a decoded NAT-PMP response. Fields that the opcode does
// not carry are zero.
type pmpResponse struct {
	Op       byte // without the reply bit: 0, 1 or 2
	Result   uint16
	Epoch    uint32
	External netip.Addr // op 0
	Internal uint16     // op 1, 2
	Mapped   uint16     // op 1, 2
	Lifetime uint32     // op 1, 2
}

// pmpExternalRequest returns the request for the gateway's external address.
func pmpExternalRequest() []byte { return []byte{pmpVersion, pmpOpExternal} }

// pmpMapRequest returns a mapping request. Lifetime 0 with suggested 0
// deletes the mapping of internal.
func pmpMapRequest(proto string, internal, suggested uint16, lifetime uint32) []byte {
	b := make([]byte, 12)
	b[0] = pmpVersion
	b[1] = pmpOpMapUDP
	if proto == "tcp" {
		b[1] = pmpOpMapTCP
	}
	binary.BigEndian.PutUint16(b[4:], internal)
	binary.BigEndian.PutUint16(b[6:], suggested)
	binary.BigEndian.PutUint32(b[8:], lifetime)
	return b
}

// parsePMPResponse decodes a NAT-PMP response. A well-formed response with a
// non-zero result code is returned together with an error wrapping
// ErrRefused, or ErrUnsupported for "unsupported version/opcode".
func parsePMPResponse(b []byte) (pmpResponse, error) {
	var r pmpResponse
	if len(b) < pmpMinReplyLen {
		return r, fmt.Errorf("%w: NAT-PMP response of %d bytes, want at least %d", ErrMalformed, len(b), pmpMinReplyLen)
	}
	if b[0] == pcpVersion {
		return r, fmt.Errorf("%w: the gateway answered NAT-PMP with PCP (version 2)", ErrUnsupported)
	}
	if b[0] != pmpVersion {
		return r, fmt.Errorf("%w: NAT-PMP response version %d, want %d", ErrMalformed, b[0], pmpVersion)
	}
	if b[1] < pmpReplyBit || b[1] > pmpReplyBit+pmpOpMapTCP {
		return r, fmt.Errorf("%w: NAT-PMP response opcode %d, want 128, 129 or 130", ErrMalformed, b[1])
	}
	r.Op = b[1] - pmpReplyBit
	r.Result = binary.BigEndian.Uint16(b[2:])
	r.Epoch = binary.BigEndian.Uint32(b[4:])
	if r.Result != pmpSuccess {
		text, ok := pmpResultText[r.Result]
		if !ok {
			text = "unknown result"
		}
		kind := ErrRefused
		if r.Result == pmpUnsupportedVersion || r.Result == pmpUnsupportedOpcode {
			kind = ErrUnsupported
		}
		return r, fmt.Errorf("%w: NAT-PMP result %d (%s)", kind, r.Result, text)
	}
	switch r.Op {
	case pmpOpExternal:
		if len(b) < pmpExternalLen {
			return r, fmt.Errorf("%w: NAT-PMP external address response of %d bytes, want %d", ErrMalformed, len(b), pmpExternalLen)
		}
		r.External = netip.AddrFrom4([4]byte(b[8:12]))
	default:
		if len(b) < pmpMapLen {
			return r, fmt.Errorf("%w: NAT-PMP mapping response of %d bytes, want %d", ErrMalformed, len(b), pmpMapLen)
		}
		r.Internal = binary.BigEndian.Uint16(b[8:])
		r.Mapped = binary.BigEndian.Uint16(b[10:])
		r.Lifetime = binary.BigEndian.Uint32(b[12:])
	}
	return r, nil
}

// pmpExternal asks the gateway for its external address. With op held.
func (c *Client) pmpExternal(ctx context.Context, gw netip.Addr) (netip.Addr, error) {
	var resp pmpResponse
	err := c.exchange(ctx, gw, pmpExternalRequest(), func(b []byte) (bool, error) {
		r, err := parsePMPResponse(b)
		if errors.Is(err, ErrMalformed) {
			c.log.Debug("ignoring malformed NAT-PMP packet", "gateway", gw, "err", err)
			return false, nil
		}
		if r.Op != pmpOpExternal {
			return false, nil
		}
		resp = r
		return true, err
	})
	if err != nil {
		return netip.Addr{}, err
	}
	c.noteEpoch(MethodNATPMP, resp.Epoch)
	return resp.External, nil
}

// pmpMap sends a NAT-PMP mapping request; lifetime 0 deletes. With op held.
func (c *Client) pmpMap(ctx context.Context, gw netip.Addr, m *mapping, lifetime uint32) (Mapping, error) {
	if m.key.remote.IsValid() {
		return Mapping{}, fmt.Errorf("%w: NAT-PMP has no PEER", ErrUnsupported)
	}
	c.mu.Lock()
	prev, ext := m.cur, c.pmpExt
	c.mu.Unlock()
	if !ext.IsValid() && lifetime > 0 {
		var err error
		if ext, err = c.pmpExternal(ctx, gw); err != nil {
			return Mapping{}, err
		}
		c.mu.Lock()
		c.pmpExt = ext
		c.mu.Unlock()
	}
	suggested := m.key.port
	if prev.External.IsValid() {
		suggested = prev.External.Port()
	}
	if lifetime == 0 {
		suggested = 0 // RFC 6886 section 3.4: delete
	}
	op := byte(pmpOpMapUDP)
	if m.key.proto == "tcp" {
		op = pmpOpMapTCP
	}
	var resp pmpResponse
	err := c.exchange(ctx, gw, pmpMapRequest(m.key.proto, m.key.port, suggested, lifetime), func(b []byte) (bool, error) {
		r, err := parsePMPResponse(b)
		if errors.Is(err, ErrMalformed) {
			c.log.Debug("ignoring malformed NAT-PMP packet", "gateway", gw, "err", err)
			return false, nil
		}
		if errors.Is(err, ErrUnsupported) && b[0] == pcpVersion {
			return true, err
		}
		if r.Op != op || (err == nil && r.Internal != m.key.port) {
			return false, nil
		}
		resp = r
		return true, err
	})
	if err != nil {
		return Mapping{}, err
	}
	c.noteEpoch(MethodNATPMP, resp.Epoch)
	if lifetime == 0 {
		return Mapping{}, nil
	}
	if resp.Mapped == 0 {
		return Mapping{}, fmt.Errorf("%w: NAT-PMP success with external port 0", ErrMalformed)
	}
	if !ext.IsValid() || ext.IsUnspecified() {
		return Mapping{}, fmt.Errorf("%w: NAT-PMP gateway reports no external address (%v)", ErrRefused, ext)
	}
	return Mapping{
		External: netip.AddrPortFrom(ext, resp.Mapped),
		Lifetime: time.Duration(resp.Lifetime) * time.Second,
	}, nil
}
