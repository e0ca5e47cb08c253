package xtcp

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// CandidateKind says where a candidate address came from.
type CandidateKind uint8

// Candidate kinds. The text forms ("host", "srflx", "predicted", "prflx",
// "mapped") are what the control protocol carries.
const (
	// Host: an address of one of the peer's own interfaces.
	Host CandidateKind = iota + 1
	// ServerReflexive: the peer's address as the server (its STUN
	// responder) saw it: the public mapping of its NAT.
	ServerReflexive
	// Predicted: a guess at a future mapping of a NAT that maps every
	// destination to another port (for example the next ports after the
	// server-reflexive one).
	Predicted
	// PeerReflexive: an address an authentic probe came from that no
	// candidate listed. Punch learns these; the control protocol may
	// carry them too.
	PeerReflexive
	// Mapped: a port the peer's gateway forwards to it on request (UPnP
	// IGD, NAT-PMP or PCP, see pkg/portmap), at the external address the
	// gateway reports or at the peer's server-reflexive address (a
	// gateway behind another NAT reports a wrong external address).
	// Unlike a server-reflexive mapping it accepts packets from anyone.
	Mapped
)

// String returns the text form: "host", "srflx", "predicted", "prflx" or
// "mapped".
func (k CandidateKind) String() string {
	switch k {
	case Host:
		return "host"
	case ServerReflexive:
		return "srflx"
	case Predicted:
		return "predicted"
	case PeerReflexive:
		return "prflx"
	case Mapped:
		return "mapped"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

func (k CandidateKind) valid() bool { return k >= Host && k <= Mapped }

// MarshalText returns the text form.
func (k CandidateKind) MarshalText() ([]byte, error) {
	if !k.valid() {
		return nil, fmt.Errorf("xtcp: invalid candidate kind %d", uint8(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText accepts exactly one of the text forms.
func (k *CandidateKind) UnmarshalText(b []byte) error {
	for c := Host; c <= Mapped; c++ {
		if string(b) == c.String() {
			*k = c
			return nil
		}
	}
	return fmt.Errorf("xtcp: unknown candidate kind %q (want host, srflx, predicted, prflx or mapped)", b)
}

// Candidate is an address at which a peer may be reachable. Its JSON form
// is {"addr":"10.1.0.10:4000","kind":"host"}.
type Candidate struct {
	Addr netip.AddrPort `json:"addr"`
	Kind CandidateKind  `json:"kind"`
}

// String returns "kind addr", e.g. "host 10.1.0.10:4000".
func (c Candidate) String() string { return c.Kind.String() + " " + c.Addr.String() }

// Validate reports a candidate no probe can be sent to: an invalid,
// unspecified, multicast or link-local address (a link-local address means
// nothing without the peer's zone), port 0, or an unknown kind.
func (c Candidate) Validate() error {
	a := c.Addr.Addr().Unmap()
	switch {
	case !c.Addr.IsValid():
		return fmt.Errorf("xtcp: candidate %v: invalid address", c)
	case !c.Kind.valid():
		return fmt.Errorf("xtcp: candidate %v: invalid kind", c)
	case c.Addr.Port() == 0:
		return fmt.Errorf("xtcp: candidate %v: port 0", c)
	case a.IsUnspecified(), a.IsMulticast(), a.IsLinkLocalUnicast(), a.Is4() && a.As4() == [4]byte{255, 255, 255, 255}:
		return fmt.Errorf("xtcp: candidate %v: not a unicast address", c)
	}
	return nil
}

// OrderCandidates returns the remote candidates in the order to try them:
//
//  1. host candidates in a subnet we share (local lists our interfaces'
//     prefixes, see LocalPrefixes);
//  2. other host candidates with private addresses (RFC 1918, fc00::/7)
//     or loopback ones;
//  3. mapped candidates (a port the peer's gateway forwards on request:
//     it accepts packets from any address, so it works against any NAT
//     on our side);
//  4. server-reflexive and peer-reflexive candidates, and host candidates
//     with public addresses (reachable directly, like a server-reflexive
//     one);
//  5. predicted candidates.
//
// The order is stable within a tier. Addresses are unmapped (::ffff:a.b.c.d
// becomes a.b.c.d) and each appears once, as its earliest tier; candidates
// that fail Validate are dropped.
func OrderCandidates(local []netip.Prefix, remote []Candidate) []Candidate {
	type ranked struct {
		c    Candidate
		tier int
	}
	rs := make([]ranked, 0, len(remote))
	for _, c := range remote {
		if c.Validate() != nil {
			continue
		}
		c.Addr = unmapAP(c.Addr)
		rs = append(rs, ranked{c, candidateTier(local, c)})
	}
	slices.SortStableFunc(rs, func(a, b ranked) int { return a.tier - b.tier })
	out := make([]Candidate, 0, len(rs))
	seen := make(map[netip.AddrPort]bool, len(rs))
	for _, r := range rs {
		if seen[r.c.Addr] {
			continue
		}
		seen[r.c.Addr] = true
		out = append(out, r.c)
	}
	return out
}

func candidateTier(local []netip.Prefix, c Candidate) int {
	a := c.Addr.Addr()
	switch c.Kind {
	case Host:
		for _, p := range local {
			if p.Contains(a) {
				return 0
			}
		}
		if a.IsPrivate() || a.IsLoopback() {
			return 1
		}
		return 3
	case Mapped:
		return 2
	case ServerReflexive, PeerReflexive:
		return 3
	default:
		return 4
	}
}

// PathKind says whether a punched path stays in a local network.
type PathKind uint8

// Path kinds.
const (
	// PathLAN: the peer's address is private (RFC 1918, fc00::/7),
	// loopback or link-local.
	PathLAN PathKind = iota + 1
	// PathInternet: any other address.
	PathInternet
)

// String returns "lan" or "internet".
func (k PathKind) String() string {
	switch k {
	case PathLAN:
		return "lan"
	case PathInternet:
		return "internet"
	}
	return fmt.Sprintf("pathkind(%d)", uint8(k))
}

// MarshalText returns the String form.
func (k PathKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// ClassifyPath returns the kind of a path to addr.
func ClassifyPath(addr netip.AddrPort) PathKind {
	a := addr.Addr().Unmap()
	if a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() {
		return PathLAN
	}
	return PathInternet
}

// HostCandidates returns a host candidate with the given port for every
// address of every up, non-loopback interface of this machine: IPv4
// addresses first, then IPv6, each family in interface order. Loopback,
// link-local and multicast addresses are left out.
func HostCandidates(port uint16) ([]Candidate, error) {
	prefixes, err := LocalPrefixes()
	if err != nil {
		return nil, err
	}
	out := make([]Candidate, 0, len(prefixes))
	for _, p := range prefixes {
		out = append(out, Candidate{Addr: netip.AddrPortFrom(p.Addr(), port), Kind: Host})
	}
	return out, nil
}

// LocalPrefixes returns the addresses of every up, non-loopback interface
// of this machine with their prefix lengths (10.1.0.5/24), in the order and
// with the filter of HostCandidates. Its result is OrderCandidates' local.
func LocalPrefixes() ([]netip.Prefix, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("xtcp: list interfaces: %w", err)
	}
	var v4, v6 []netip.Prefix
	seen := map[netip.Addr]bool{}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("xtcp: addresses of %s: %w", ifc.Name, err)
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			if !usableHostAddr(ip) || seen[ip] {
				continue
			}
			seen[ip] = true
			ones, _ := ipn.Mask.Size()
			if ip.Is4() && ones > 32 {
				ones -= 96
			}
			p := netip.PrefixFrom(ip, ones)
			if ip.Is4() {
				v4 = append(v4, p)
			} else {
				v6 = append(v6, p)
			}
		}
	}
	return append(v4, v6...), nil
}

func usableHostAddr(a netip.Addr) bool {
	return a.IsValid() && !a.IsLoopback() && !a.IsLinkLocalUnicast() && !a.IsMulticast() &&
		!a.IsUnspecified() && !a.IsLinkLocalMulticast()
}

// unmapAP turns ::ffff:a.b.c.d:port into a.b.c.d:port.
func unmapAP(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
