// Package proxyheader builds the PROXY protocol headers (HAProxy's
// version 1, text, and version 2, binary) that hopc writes to a local
// service before a connection's bytes, or before each datagram, so that
// the service learns the real client address. The headers are built with
// github.com/pires/go-proxyproto.
//
// Any proxy type may call Build: tcp, udp, stcp and xtcp here, http and
// https on the vhost side.
package proxyheader

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"

	proxyproto "github.com/pires/go-proxyproto"
)

// ErrVersion reports a version other than "v1" and "v2", or "v1" for a
// datagram (version 1 has no UDP).
var ErrVersion = errors.New("proxyheader: unsupported PROXY protocol version")

// Network is the transport a header describes.
type Network int

// Networks of Build.
const (
	Stream   Network = iota // TCP: TCP4/TCP6 in v1, STREAM in v2
	Datagram                // UDP: DGRAM in v2 (v1 has no UDP)
)

// Build returns the header of the given version ("v1" or "v2") for a
// connection (or datagram) from src to dst, both host:port with a literal
// IP. When either is not such an address (an xtcp visitor sends none),
// the header says the address is unknown:
// "PROXY UNKNOWN" in v1, the LOCAL command in v2, which a receiver
// treats as a connection with no proxied address.
func Build(version string, network Network, src, dst string) ([]byte, error) {
	var v byte
	switch version {
	case "v1":
		if network == Datagram {
			return nil, fmt.Errorf("%w: v1 has no UDP, use v2", ErrVersion)
		}
		v = 1
	case "v2":
		v = 2
	default:
		return nil, fmt.Errorf("%w: %q (use v1 or v2)", ErrVersion, version)
	}
	s, errS := netip.ParseAddrPort(src)
	d, errD := netip.ParseAddrPort(dst)
	var h *proxyproto.Header
	if errS != nil || errD != nil {
		h = &proxyproto.Header{Version: v, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
	} else if network == Datagram {
		h = proxyproto.HeaderProxyFromAddrs(v, net.UDPAddrFromAddrPort(unmap(s)), net.UDPAddrFromAddrPort(unmap(d)))
	} else {
		h = proxyproto.HeaderProxyFromAddrs(v, net.TCPAddrFromAddrPort(unmap(s)), net.TCPAddrFromAddrPort(unmap(d)))
	}
	return h.Format()
}

// Write writes the header Build returns to w.
func Write(w io.Writer, version string, network Network, src, dst string) error {
	b, err := Build(version, network, src, dst)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// unmap turns an IPv4-mapped IPv6 address into plain IPv4, so that a
// dual-stack listener's users show as TCP4/UDP4.
func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
