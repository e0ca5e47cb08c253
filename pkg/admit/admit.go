// Package admit bounds how much unauthenticated work a server takes on at
// once: a Gate counts concurrent handshakes, globally and per source IP, and
// refuses one over either cap at once, before any TLS or login byte is read.
//
// Refusals are counted, not logged one by one (a flood would flood the log);
// Stats reports them.
package admit

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Sentinel errors of Gate.Enter; match them with errors.Is.
var (
	// ErrTooMany: the global cap of concurrent handshakes is reached.
	ErrTooMany = errors.New("too many handshakes in progress")
	// ErrTooManyFromIP: the cap of concurrent handshakes from one source
	// IP is reached.
	ErrTooManyFromIP = errors.New("too many handshakes in progress from this source IP")
	// ErrInvalidLimits matches every error of Limits.Validate.
	ErrInvalidLimits = errors.New("admit: invalid limits")
)

// Limits are the caps of a Gate.
type Limits struct {
	// Max is the most handshakes in progress at once (limits.maxHandshakes).
	Max int
	// PerIP is the most handshakes in progress at once from one source IP
	// (limits.maxHandshakesPerIP).
	PerIP int
}

// Validate reports caps a Gate cannot work with.
func (l Limits) Validate() error {
	if l.Max < 1 {
		return fmt.Errorf("%w: limits.maxHandshakes is %d, must be at least 1", ErrInvalidLimits, l.Max)
	}
	if l.PerIP < 1 {
		return fmt.Errorf("%w: limits.maxHandshakesPerIP is %d, must be at least 1", ErrInvalidLimits, l.PerIP)
	}
	return nil
}

// Gate admits handshakes under Limits. The zero Gate is not usable: use New.
type Gate struct {
	lim Limits

	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int // only IPs with a handshake in progress

	refusedTotal atomic.Int64
	refusedIP    atomic.Int64
}

// New returns a Gate with the given caps.
func New(l Limits) (*Gate, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return &Gate{lim: l, perIP: map[netip.Addr]int{}}, nil
}

// Enter admits one handshake from addr (a net.Addr of a TCP or UDP peer, or
// anything whose String is host:port). On success it returns the function
// that ends the handshake; call it exactly once (calling it again does
// nothing). Over a cap it returns ErrTooMany or ErrTooManyFromIP.
func (g *Gate) Enter(addr net.Addr) (leave func(), err error) {
	ip := ipOf(addr)
	g.mu.Lock()
	if g.total >= g.lim.Max {
		g.mu.Unlock()
		g.refusedTotal.Add(1)
		return nil, ErrTooMany
	}
	if g.perIP[ip] >= g.lim.PerIP {
		g.mu.Unlock()
		g.refusedIP.Add(1)
		return nil, fmt.Errorf("%w (%s)", ErrTooManyFromIP, ip)
	}
	g.total++
	g.perIP[ip]++
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.total--
			if g.perIP[ip]--; g.perIP[ip] <= 0 {
				delete(g.perIP, ip)
			}
			g.mu.Unlock()
		})
	}, nil
}

// Stats is a snapshot of a Gate.
type Stats struct {
	InProgress     int   // handshakes admitted and not yet ended
	SourceIPs      int   // distinct source IPs among them
	RefusedTotal   int64 // refused over the global cap, since New
	RefusedPerIP   int64 // refused over the per-IP cap, since New
	MaxHandshakes  int
	MaxHandshakeIP int
}

// Stats returns the current counts.
func (g *Gate) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return Stats{InProgress: g.total, SourceIPs: len(g.perIP), RefusedTotal: g.refusedTotal.Load(),
		RefusedPerIP: g.refusedIP.Load(), MaxHandshakes: g.lim.Max, MaxHandshakeIP: g.lim.PerIP}
}

// ipOf is the source IP of addr, IPv4-mapped addresses unmapped so that one
// host counts once; an address it cannot parse counts as the zero Addr (one
// shared bucket, so it is still capped).
func ipOf(addr net.Addr) netip.Addr {
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	if addr == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
