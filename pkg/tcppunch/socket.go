package tcppunch

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/hopproxy/hop/pkg/xtcp"
	"golang.org/x/sys/unix"
)

// Sockets makes the sockets of a punch. ReuseSockets is the real one; tests
// may make them elsewhere (in a network namespace) or inject faults.
type Sockets interface {
	// Listen listens on laddr with SO_REUSEADDR and SO_REUSEPORT.
	Listen(laddr netip.AddrPort) (*net.TCPListener, error)
	// Dial connects to raddr from laddr, bound with the same options, in
	// at most the context's deadline.
	Dial(ctx context.Context, laddr, raddr netip.AddrPort) (*net.TCPConn, error)
	// HostAddrs lists the host's own addresses for host candidates.
	HostAddrs() ([]netip.Addr, error)
}

// ReuseSockets makes kernel TCP sockets with SO_REUSEADDR and SO_REUSEPORT,
// so that a listener and any number of connections share one local port.
type ReuseSockets struct {
	// Do, if set, wraps the making of every socket and the listing of
	// addresses (netlab's Host.Do makes them in a namespace).
	Do func(fn func() error) error
}

func (s ReuseSockets) do(fn func() error) error {
	if s.Do == nil {
		return fn()
	}
	return s.Do(fn)
}

func reuse(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

func network(a netip.Addr) string {
	if a.Is4() || a.Is4In6() {
		return "tcp4"
	}
	return "tcp6"
}

// Listen implements Sockets.
func (s ReuseSockets) Listen(laddr netip.AddrPort) (*net.TCPListener, error) {
	var ln net.Listener
	err := s.do(func() (err error) {
		lc := net.ListenConfig{Control: reuse, KeepAlive: -1}
		ln, err = lc.Listen(context.Background(), network(laddr.Addr()), laddr.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tcppunch: listen on %v: %w", laddr, err)
	}
	return ln.(*net.TCPListener), nil
}

// Dial implements Sockets.
func (s ReuseSockets) Dial(ctx context.Context, laddr, raddr netip.AddrPort) (*net.TCPConn, error) {
	var c net.Conn
	err := s.do(func() (err error) {
		// The keepalive of the carrier replaces TCP's.
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(laddr), Control: reuse, KeepAlive: -1}
		c, err = d.DialContext(ctx, network(raddr.Addr()), raddr.String())
		return err
	})
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// HostAddrs implements Sockets: the addresses of the interfaces that are
// up, without loopback, link-local and multicast addresses.
func (s ReuseSockets) HostAddrs() ([]netip.Addr, error) {
	var out []netip.Addr
	err := s.do(func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, ifc := range ifs {
			if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
				continue
			}
			addrs, err := ifc.Addrs()
			if err != nil {
				continue
			}
			for _, a := range addrs {
				p, err := netip.ParsePrefix(a.String())
				if err != nil {
					continue
				}
				ip := p.Addr().Unmap()
				if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
					continue
				}
				out = append(out, ip)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tcppunch: host addresses: %w", err)
	}
	return out, nil
}

// Endpoint is one local TCP port for punching: a listener on it, and the
// port every dial of the punch binds.
type Endpoint struct {
	sockets Sockets
	ln      *net.TCPListener
	local   netip.AddrPort // the bound address, with the kernel's port
}

// Listen binds laddr (the zero AddrPort means 0.0.0.0 with a port the
// kernel picks) with SO_REUSEADDR and SO_REUSEPORT through sockets (nil
// means ReuseSockets{}).
func Listen(sockets Sockets, laddr netip.AddrPort) (*Endpoint, error) {
	if sockets == nil {
		sockets = ReuseSockets{}
	}
	if !laddr.IsValid() {
		laddr = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	}
	ln, err := sockets.Listen(laddr)
	if err != nil {
		return nil, err
	}
	got := ln.Addr().(*net.TCPAddr).AddrPort()
	return &Endpoint{sockets: sockets, ln: ln, local: netip.AddrPortFrom(laddr.Addr().Unmap(), got.Port())}, nil
}

// LocalAddr is the bound address and port.
func (e *Endpoint) LocalAddr() netip.AddrPort { return e.local }

// Port is the local port every socket of the punch uses.
func (e *Endpoint) Port() uint16 { return e.local.Port() }

// Close closes the listener. Carriers punched from the endpoint stay up.
func (e *Endpoint) Close() error { return e.ln.Close() }

// Discover asks the STUN-over-TCP responder at server (hops' TCP bindPort)
// from the endpoint's port for the public address of that port, in at
// most timeout (0 means 5 s).
func (e *Endpoint) Discover(ctx context.Context, server netip.AddrPort, timeout time.Duration) (netip.AddrPort, error) {
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := e.sockets.Dial(ctx, e.local, server)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: connecting from port %d to %v: %w", ErrSTUN, e.Port(), server, err)
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	mapped, err := stunBinding(c)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("from port %d to %v: %w", e.Port(), server, err)
	}
	// hops closes after its answer; waiting for its FIN leaves the
	// TIME_WAIT on its side.
	var b [1]byte
	c.Read(b[:])
	return mapped, nil
}

// Candidates returns the endpoint's TCP candidates: one host candidate per
// host address (with the endpoint's port) and, if mapped is valid, the
// server-reflexive one (what Discover returned), unless it repeats a host
// candidate (no NAT).
func (e *Endpoint) Candidates(mapped netip.AddrPort) ([]xtcp.Candidate, error) {
	addrs, err := e.sockets.HostAddrs()
	if err != nil {
		return nil, err
	}
	var out []xtcp.Candidate
	seen := map[netip.AddrPort]bool{}
	for _, a := range addrs {
		if e.local.Addr().Is4() != a.Is4() && !e.local.Addr().IsUnspecified() {
			continue
		}
		if e.local.Addr().IsUnspecified() && e.local.Addr().Is4() && !a.Is4() {
			continue // a tcp4 socket reaches no IPv6 address
		}
		ap := netip.AddrPortFrom(a, e.Port())
		if !seen[ap] {
			seen[ap] = true
			out = append(out, xtcp.Candidate{Addr: ap, Kind: xtcp.Host})
		}
	}
	if mapped.IsValid() && !seen[mapped] {
		out = append(out, xtcp.Candidate{Addr: mapped, Kind: xtcp.ServerReflexive})
	}
	return out, nil
}
