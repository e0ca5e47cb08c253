package netlab

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// NATMode selects how a NAT picks the external port of a new mapping.
type NATMode int

const (
	// PortPreserving is nft "masquerade": the LAN source port is kept when
	// the resulting tuple is free, so one socket has one external ip:port
	// for every destination (endpoint-independent mapping). Filtering is
	// address-and-port-dependent: only replies from the exact destination
	// ip:port of a mapping get in.
	PortPreserving NATMode = iota

	// RandomPort is nft "masquerade random": the source port is never
	// kept; every new mapping gets a port picked by the kernel, so one
	// socket gets a different external port per destination ip:port
	// ("symmetric" NAT, address-and-port-dependent mapping).
	RandomPort

	// FullyRandomPort is nft "masquerade fully-random": like RandomPort,
	// with the port always drawn at random. On Linux 6.18 the two are
	// indistinguishable (see the package doc).
	FullyRandomPort
)

func (m NATMode) String() string {
	switch m {
	case PortPreserving:
		return "PortPreserving"
	case RandomPort:
		return "RandomPort"
	case FullyRandomPort:
		return "FullyRandomPort"
	}
	return fmt.Sprintf("NATMode(%d)", int(m))
}

// masquerade returns the nft statement for m.
func (m NATMode) masquerade() string {
	switch m {
	case RandomPort:
		return "masquerade random"
	case FullyRandomPort:
		return "masquerade fully-random"
	}
	return "masquerade"
}

// NATConfig configures a NAT router. The zero value is a port-preserving NAT
// with the kernel's default conntrack timeouts and strict TCP tracking
// (TCPLoose false).
type NATConfig struct {
	// Mode selects the port mapping behaviour.
	Mode NATMode

	// UDPTimeout sets nf_conntrack_udp_timeout and
	// nf_conntrack_udp_timeout_stream in the NAT's namespace: how long an
	// idle UDP mapping lives. Zero leaves the kernel defaults (30 s and
	// 120 s on Linux 6.x). It must be whole seconds.
	UDPTimeout time.Duration

	// TCPEstablishedTimeout sets nf_conntrack_tcp_timeout_established:
	// how long an idle established TCP connection keeps its mapping. Zero
	// leaves the kernel default (5 days). It must be whole seconds.
	TCPEstablishedTimeout time.Duration

	// TCPLoose sets nf_conntrack_tcp_loose. It is always written: false
	// writes 0 (strict: a mid-stream packet of a connection conntrack has
	// forgotten is "invalid" and does not create a new mapping), true
	// writes 1 (the kernel default: conntrack picks such a connection up
	// again, with a new mapping).
	TCPLoose bool

	// DropInvalid adds a rule that drops forwarded packets in conntrack
	// state invalid. Without it such packets from the LAN are forwarded
	// without NAT, as a plain Linux router does.
	DropInvalid bool

	// DropUDP adds a rule, first in the forward chain, that drops every
	// forwarded UDP packet in both directions (LAN→WAN and WAN→LAN), as
	// networks that block UDP (many offices and guest Wi-Fi) do. UDP to
	// and from the NAT itself is untouched; TCP is forwarded as usual.
	DropUDP bool

	// LossPercent drops that share of the packets the NAT forwards, at
	// random and independently, in both directions (LAN→WAN and WAN→LAN),
	// UDP and TCP alike: nft "numgen random mod 100 < LossPercent drop",
	// the first rule of the forward chain. Packets to or from the NAT
	// itself are not affected. 0 (the default) drops nothing; at most 100.
	// nftables rather than netem, which not every kernel has. The rule
	// sees packets as the kernel holds them: a TSO/GSO packet (up to
	// 64 KB) is one; for loss per wire packet, turn offloads off on the
	// senders (Host.DisableOffloads).
	LossPercent int
}

// Validate reports whether c is usable.
func (c NATConfig) Validate() error {
	if c.Mode < PortPreserving || c.Mode > FullyRandomPort {
		return fmt.Errorf("netlab: unknown NAT mode %v", c.Mode)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"UDPTimeout", c.UDPTimeout}, {"TCPEstablishedTimeout", c.TCPEstablishedTimeout}} {
		if d.v < 0 || d.v%time.Second != 0 {
			return fmt.Errorf("netlab: NATConfig.%s %v: want 0 (kernel default) or whole seconds", d.name, d.v)
		}
	}
	if c.LossPercent < 0 || c.LossPercent > 100 {
		return fmt.Errorf("netlab: NATConfig.LossPercent %d: want 0-100", c.LossPercent)
	}
	return nil
}

// A NAT is a host routing between a LAN and a WAN network with nftables
// masquerade. Its Host methods work as for any host; use DefaultRoute to
// chain NATs (a NAT whose WAN is another NAT's LAN).
type NAT struct {
	*Host
	cfg          NATConfig
	wan, lan     netip.Addr
	wanIf, lanIf string
}

// NAT creates a NAT router: a host attached to wan with address wanAddr and
// to lan with address lanAddr (LAN hosts use lanAddr as their default
// route), with ip_forward on and this nftables ruleset:
//
//   - forward: drop by default; drop all UDP (if DropUDP); drop
//     LossPercent of all packets at random (if LossPercent > 0); drop ct
//     state invalid (if DropInvalid);
//     accept established/related; accept LAN→WAN.
//   - input: on the WAN leg accept only established/related; everything
//     else arriving there is silently dropped.
//   - postrouting: masquerade out of the WAN leg, per cfg.Mode.
//
// There is no hairpinning: a LAN host cannot reach another LAN host through
// the NAT's WAN address. It fails the test on error.
func (l *Lab) NAT(name string, wan *Network, wanAddr string, lan *Network, lanAddr string, cfg NATConfig) *NAT {
	l.tb.Helper()
	n, err := l.nat(name, wan, wanAddr, lan, lanAddr, cfg)
	l.fatal(err)
	return n
}

func (l *Lab) nat(name string, wan *Network, wanAddr string, lan *Network, lanAddr string, cfg NATConfig) (*NAT, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h, err := l.host(name)
	if err != nil {
		return nil, err
	}
	n := &NAT{Host: h, cfg: cfg}
	if n.wanIf, err = h.attach(wan, wanAddr); err != nil {
		return nil, err
	}
	if n.lanIf, err = h.attach(lan, lanAddr); err != nil {
		return nil, err
	}
	addrs := h.Addrs()
	n.wan, n.lan = addrs[0], addrs[1]

	// The ruleset uses ct, so conntrack is active in the namespace before
	// its sysctls are written.
	if _, err := run([]byte(n.ruleset()), "ip", "netns", "exec", h.ns, "nft", "-f", "-"); err != nil {
		return nil, err
	}
	sysctls := [][2]string{
		{"net.ipv4.ip_forward", "1"},
		{"net.netfilter.nf_conntrack_tcp_loose", boolSysctl(cfg.TCPLoose)},
	}
	if cfg.UDPTimeout > 0 {
		s := seconds(cfg.UDPTimeout)
		sysctls = append(sysctls,
			[2]string{"net.netfilter.nf_conntrack_udp_timeout", s},
			[2]string{"net.netfilter.nf_conntrack_udp_timeout_stream", s})
	}
	if cfg.TCPEstablishedTimeout > 0 {
		sysctls = append(sysctls,
			[2]string{"net.netfilter.nf_conntrack_tcp_timeout_established", seconds(cfg.TCPEstablishedTimeout)})
	}
	for _, kv := range sysctls {
		if err := h.sysctl(kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func (n *NAT) ruleset() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table ip netlab {\n")
	fmt.Fprintf(&b, "\tchain forward {\n\t\ttype filter hook forward priority filter; policy drop;\n")
	if n.cfg.DropUDP {
		fmt.Fprintf(&b, "\t\tmeta l4proto udp drop\n")
	}
	if n.cfg.LossPercent > 0 {
		fmt.Fprintf(&b, "\t\tnumgen random mod 100 < %d drop\n", n.cfg.LossPercent)
	}
	if n.cfg.DropInvalid {
		fmt.Fprintf(&b, "\t\tct state invalid drop\n")
	}
	fmt.Fprintf(&b, "\t\tct state established,related accept\n")
	fmt.Fprintf(&b, "\t\tiifname %q oifname %q accept\n", n.lanIf, n.wanIf)
	fmt.Fprintf(&b, "\t}\n")
	fmt.Fprintf(&b, "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n")
	fmt.Fprintf(&b, "\t\tiifname %q ct state established,related accept\n", n.wanIf)
	fmt.Fprintf(&b, "\t\tiifname %q drop\n", n.wanIf)
	fmt.Fprintf(&b, "\t}\n")
	fmt.Fprintf(&b, "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	fmt.Fprintf(&b, "\t\toifname %q %s\n", n.wanIf, n.cfg.Mode.masquerade())
	fmt.Fprintf(&b, "\t}\n}\n")
	return b.String()
}

// WANAddr returns the NAT's address on its WAN network: the source address
// that WAN hosts see.
func (n *NAT) WANAddr() netip.Addr { return n.wan }

// LANAddr returns the NAT's address on its LAN network: the LAN hosts'
// gateway.
func (n *NAT) LANAddr() netip.Addr { return n.lan }

// Config returns the configuration the NAT was created with.
func (n *NAT) Config() NATConfig { return n.cfg }

// Ruleset returns the nftables ruleset the NAT was created with.
func (n *NAT) Ruleset() string { return n.ruleset() }

// Conntrack returns the NAT's conntrack table, one entry per line in the
// format of /proc/net/nf_conntrack. It needs CONFIG_NF_CONNTRACK_PROCFS.
func (n *NAT) Conntrack(ctx context.Context) ([]string, error) {
	out, err := n.Run(ctx, "cat", "/proc/net/nf_conntrack")
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, line := range strings.Split(string(out), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	return lines, nil
}

func boolSysctl(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func seconds(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }
