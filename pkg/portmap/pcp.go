package portmap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// PCP wire format (RFC 6887). Addresses are 16 bytes, IPv4 as IPv4-mapped
// IPv6 (::ffff:a.b.c.d).
//
//	request header (24):  version(1)=2 R|opcode(1) reserved(2) lifetime(4) client address(16)
//	response header (24): version(1)=2 R|opcode(1) reserved(1) result(1) lifetime(4)
//	                      epoch(4) reserved(12)
//	MAP payload (36):     nonce(12) protocol(1) reserved(3) internal port(2)
//	                      external port(2) external address(16)
//	PEER payload (56):    MAP payload, remote port(2) reserved(2) remote address(16)
//
// Options after the payload are ignored in responses and never sent.
const (
	pcpVersion    = 2
	pcpOpAnnounce = 0
	pcpOpMap      = 1
	pcpOpPeer     = 2
	pcpReplyBit   = 0x80
	pcpHeaderLen  = 24
	pcpMapLen     = 36
	pcpPeerLen    = 56
	pcpMaxLen     = 1100 // RFC 6887 section 7
)

// PCP result codes (RFC 6887 section 7.4).
const (
	pcpSuccess         = 0
	pcpUnsuppVersion   = 1
	pcpNotAuthorized   = 2
	pcpMalformedReq    = 3
	pcpUnsuppOpcode    = 4
	pcpUnsuppOption    = 5
	pcpMalformedOption = 6
	pcpNetworkFailure  = 7
	pcpNoResources     = 8
	pcpUnsuppProtocol  = 9
	pcpUserExQuota     = 10
	pcpCannotProvide   = 11
	pcpAddrMismatch    = 12
	pcpExcessivePeers  = 13
)

var pcpResultText = map[byte]string{
	pcpUnsuppVersion:   "UNSUPP_VERSION",
	pcpNotAuthorized:   "NOT_AUTHORIZED",
	pcpMalformedReq:    "MALFORMED_REQUEST",
	pcpUnsuppOpcode:    "UNSUPP_OPCODE",
	pcpUnsuppOption:    "UNSUPP_OPTION",
	pcpMalformedOption: "MALFORMED_OPTION",
	pcpNetworkFailure:  "NETWORK_FAILURE",
	pcpNoResources:     "NO_RESOURCES",
	pcpUnsuppProtocol:  "UNSUPP_PROTOCOL",
	pcpUserExQuota:     "USER_EX_QUOTA",
	pcpCannotProvide:   "CANNOT_PROVIDE_EXTERNAL",
	pcpAddrMismatch:    "ADDRESS_MISMATCH",
	pcpExcessivePeers:  "EXCESSIVE_REMOTE_PEERS",
}

// IANA protocol numbers used by PCP.
const (
	protoNumTCP = 6
	protoNumUDP = 17
)

func protoNum(proto string) byte {
	if proto == "tcp" {
		return protoNumTCP
	}
	return protoNumUDP
}

// pcpRequest is a PCP ANNOUNCE, MAP or PEER request.
type pcpRequest struct {
	Op           byte
	Lifetime     uint32
	Client       netip.Addr // the source address of the request
	Nonce        [12]byte
	Proto        byte
	InternalPort uint16
	ExternalPort uint16     // suggested
	ExternalIP   netip.Addr // suggested; zero: any
	RemotePort   uint16     // PEER only
	RemoteIP     netip.Addr // PEER only
}

func put16(b []byte, a netip.Addr) {
	if !a.IsValid() {
		if len(b) >= 16 { // "any": ::ffff:0.0.0.0 for IPv4 clients
			clear(b[:16])
			b[10], b[11] = 0xff, 0xff
		}
		return
	}
	v := a.As16()
	copy(b, v[:])
}

func (r pcpRequest) marshal() []byte {
	n := pcpHeaderLen
	switch r.Op {
	case pcpOpMap:
		n += pcpMapLen
	case pcpOpPeer:
		n += pcpPeerLen
	}
	b := make([]byte, n)
	b[0] = pcpVersion
	b[1] = r.Op
	binary.BigEndian.PutUint32(b[4:], r.Lifetime)
	put16(b[8:24], r.Client)
	if r.Op == pcpOpAnnounce {
		return b
	}
	p := b[pcpHeaderLen:]
	copy(p[0:12], r.Nonce[:])
	p[12] = r.Proto
	binary.BigEndian.PutUint16(p[16:], r.InternalPort)
	binary.BigEndian.PutUint16(p[18:], r.ExternalPort)
	put16(p[20:36], r.ExternalIP)
	if r.Op == pcpOpPeer {
		binary.BigEndian.PutUint16(p[36:], r.RemotePort)
		put16(p[40:56], r.RemoteIP)
	}
	return b
}

// pcpResponse is a decoded PCP response.
type pcpResponse struct {
	Op           byte // without the R bit
	Result       byte
	Lifetime     uint32
	Epoch        uint32
	Nonce        [12]byte
	Proto        byte
	InternalPort uint16
	ExternalPort uint16
	ExternalIP   netip.Addr
	RemotePort   uint16
	RemoteIP     netip.Addr
}

// parsePCPResponse decodes a PCP response. A NAT-PMP server answers a PCP
// request with a version 0 packet (RFC 6887 section 9): that and result
// UNSUPP_VERSION/UNSUPP_OPCODE give an error wrapping ErrUnsupported; other
// non-zero results wrap ErrRefused and still return the decoded header.
func parsePCPResponse(b []byte) (pcpResponse, error) {
	var r pcpResponse
	if len(b) >= 2 && b[0] == pmpVersion {
		return r, fmt.Errorf("%w: the gateway answered PCP with NAT-PMP (version 0)", ErrUnsupported)
	}
	if len(b) < pcpHeaderLen {
		return r, fmt.Errorf("%w: PCP response of %d bytes, want at least %d", ErrMalformed, len(b), pcpHeaderLen)
	}
	if len(b) > pcpMaxLen || len(b)%4 != 0 {
		return r, fmt.Errorf("%w: PCP response of %d bytes, want a multiple of 4 up to %d", ErrMalformed, len(b), pcpMaxLen)
	}
	if b[0] != pcpVersion {
		return r, fmt.Errorf("%w: PCP response version %d, want %d", ErrMalformed, b[0], pcpVersion)
	}
	if b[1]&pcpReplyBit == 0 {
		return r, fmt.Errorf("%w: PCP packet without the response bit", ErrMalformed)
	}
	r.Op = b[1] &^ pcpReplyBit
	r.Result = b[3]
	r.Lifetime = binary.BigEndian.Uint32(b[4:])
	r.Epoch = binary.BigEndian.Uint32(b[8:])
	if r.Result != pcpSuccess {
		text, ok := pcpResultText[r.Result]
		if !ok {
			text = "unknown result"
		}
		kind := ErrRefused
		if r.Result == pcpUnsuppVersion || r.Result == pcpUnsuppOpcode {
			kind = ErrUnsupported
		}
		// An error response may still carry the payload (with the nonce).
		if err := r.parsePayload(b[pcpHeaderLen:]); err != nil {
			r.Nonce = [12]byte{}
		}
		return r, fmt.Errorf("%w: PCP result %d (%s)", kind, r.Result, text)
	}
	if err := r.parsePayload(b[pcpHeaderLen:]); err != nil {
		return r, err
	}
	return r, nil
}

func (r *pcpResponse) parsePayload(p []byte) error {
	switch r.Op {
	case pcpOpAnnounce:
		return nil
	case pcpOpMap, pcpOpPeer:
	default:
		return fmt.Errorf("%w: PCP response opcode %d, want 0 (ANNOUNCE), 1 (MAP) or 2 (PEER)", ErrMalformed, r.Op)
	}
	want := pcpMapLen
	if r.Op == pcpOpPeer {
		want = pcpPeerLen
	}
	if len(p) < want {
		return fmt.Errorf("%w: PCP opcode %d payload of %d bytes, want %d", ErrMalformed, r.Op, len(p), want)
	}
	copy(r.Nonce[:], p[0:12])
	r.Proto = p[12]
	r.InternalPort = binary.BigEndian.Uint16(p[16:])
	r.ExternalPort = binary.BigEndian.Uint16(p[18:])
	r.ExternalIP = netip.AddrFrom16([16]byte(p[20:36])).Unmap()
	if r.Op == pcpOpPeer {
		r.RemotePort = binary.BigEndian.Uint16(p[36:])
		r.RemoteIP = netip.AddrFrom16([16]byte(p[40:56])).Unmap()
	}
	return nil
}

// pcpMap sends a PCP MAP (or PEER, for m.key.remote) request. Lifetime 0
// deletes. With op held.
func (c *Client) pcpMap(ctx context.Context, gw, local netip.Addr, m *mapping, lifetime uint32) (Mapping, error) {
	c.mu.Lock()
	prev := m.cur
	c.mu.Unlock()
	req := pcpRequest{
		Op:           pcpOpMap,
		Lifetime:     lifetime,
		Client:       local,
		Nonce:        m.nonce,
		Proto:        protoNum(m.key.proto),
		InternalPort: m.key.port,
		ExternalPort: m.key.port, // ask for port preservation
	}
	if prev.External.IsValid() {
		req.ExternalPort, req.ExternalIP = prev.External.Port(), prev.External.Addr()
	}
	if m.key.remote.IsValid() {
		req.Op, req.RemotePort, req.RemoteIP = pcpOpPeer, m.key.remote.Port(), m.key.remote.Addr()
	}
	var resp pcpResponse
	err := c.exchange(ctx, gw, req.marshal(), func(b []byte) (bool, error) {
		r, err := parsePCPResponse(b)
		if errors.Is(err, ErrMalformed) {
			c.log.Debug("ignoring malformed PCP packet", "gateway", gw, "err", err)
			return false, nil
		}
		if errors.Is(err, ErrUnsupported) && r.Op == 0 {
			return true, err // NAT-PMP's version answer or UNSUPP_VERSION carries no opcode
		}
		if r.Op != req.Op || (r.Nonce != [12]byte{} && r.Nonce != req.Nonce) {
			return false, nil // an answer to another request
		}
		if err != nil {
			return true, err
		}
		if r.Nonce != req.Nonce || r.Proto != req.Proto || r.InternalPort != req.InternalPort {
			return false, nil
		}
		resp = r
		return true, nil
	})
	if err != nil {
		return Mapping{}, err
	}
	c.noteEpoch(MethodPCP, resp.Epoch)
	if lifetime == 0 {
		return Mapping{}, nil
	}
	if !resp.ExternalIP.Is4() || resp.ExternalPort == 0 {
		return Mapping{}, fmt.Errorf("%w: PCP success without an IPv4 external address and port (%v:%d)", ErrMalformed, resp.ExternalIP, resp.ExternalPort)
	}
	return Mapping{
		External: netip.AddrPortFrom(resp.ExternalIP, resp.ExternalPort),
		Lifetime: time.Duration(resp.Lifetime) * time.Second,
	}, nil
}

// pcpAnnounce sends a PCP ANNOUNCE (RFC 6887 section 14.1), which a PCP
// server answers with its epoch: a probe that creates nothing.
func (c *Client) pcpAnnounce(ctx context.Context, gw, local netip.Addr) error {
	req := pcpRequest{Op: pcpOpAnnounce, Client: local}
	var epoch uint32
	err := c.exchange(ctx, gw, req.marshal(), func(b []byte) (bool, error) {
		r, err := parsePCPResponse(b)
		if errors.Is(err, ErrMalformed) {
			return false, nil
		}
		if err != nil {
			return true, err
		}
		if r.Op != pcpOpAnnounce {
			return false, nil
		}
		epoch = r.Epoch
		return true, nil
	})
	if err == nil {
		c.noteEpoch(MethodPCP, epoch)
	}
	return err
}
