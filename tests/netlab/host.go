package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A Network is one L2 segment: a bridge (br0) in a namespace of its own.
type Network struct {
	lab    *Lab
	name   string
	ns     string
	prefix netip.Prefix

	mu     sync.Mutex
	nports int
	used   map[netip.Addr]string // address → host name
}

// Network creates a network with the given IPv4 CIDR (for example
// "198.51.100.0/24") and blackholes the CIDR in the root namespace until
// Close. Two networks of one lab may share a CIDR (two home LANs with the same
// subnet behind different NATs). It fails the test on error.
func (l *Lab) Network(name, cidr string) *Network {
	l.tb.Helper()
	n, err := l.network(name, cidr)
	l.fatal(err)
	return n
}

func (l *Lab) network(name, cidr string) (*Network, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("netlab: network %s: %w", name, err)
	}
	if !p.Addr().Is4() || p != p.Masked() || p.Bits() < 8 || p.Bits() > 30 {
		return nil, fmt.Errorf("netlab: network %s: want an IPv4 network CIDR between /8 and /30, got %s", name, cidr)
	}
	ns, err := l.claim(name)
	if err != nil {
		return nil, err
	}
	// The route goes first: the CIDR is blackholed before any of it exists.
	if err := l.blackhole(p); err != nil {
		return nil, err
	}
	if err := l.addNS(ns); err != nil {
		return nil, err
	}
	if _, err := run(nil, "ip", "-n", ns, "link", "add", "br0", "type", "bridge",
		"stp_state", "0", "forward_delay", "0"); err != nil {
		return nil, err
	}
	if _, err := run(nil, "ip", "-n", ns, "link", "set", "br0", "up"); err != nil {
		return nil, err
	}
	return &Network{lab: l, name: name, ns: ns, prefix: p, used: make(map[netip.Addr]string)}, nil
}

// Name returns the name given to Lab.Network.
func (n *Network) Name() string { return n.name }

// Namespace returns the name of the namespace holding the bridge.
func (n *Network) Namespace() string { return n.ns }

// Prefix returns the network's CIDR.
func (n *Network) Prefix() netip.Prefix { return n.prefix }

// reserve checks that a is a free host address of n and takes it.
func (n *Network) reserve(host string, a netip.Addr) (port string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	last := lastAddr(n.prefix)
	if !n.prefix.Contains(a) || a == n.prefix.Addr() || a == last {
		return "", fmt.Errorf("netlab: %s is not a host address of network %s (%s)", a, n.name, n.prefix)
	}
	if other, ok := n.used[a]; ok {
		return "", fmt.Errorf("netlab: %s is already used by %s on network %s", a, other, n.name)
	}
	n.used[a] = host
	port = fmt.Sprintf("p%d", n.nports)
	n.nports++
	return port, nil
}

// lastAddr returns the broadcast address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(b)
}

// A Host is a network namespace with lo up, to which networks are attached.
type Host struct {
	lab  *Lab
	name string
	ns   string

	mu    sync.Mutex
	nifs  int
	addrs []netip.Addr
}

// Host creates a host. It fails the test on error.
func (l *Lab) Host(name string) *Host {
	l.tb.Helper()
	h, err := l.host(name)
	l.fatal(err)
	return h
}

func (l *Lab) host(name string) (*Host, error) {
	ns, err := l.claim(name)
	if err != nil {
		return nil, err
	}
	if err := l.addNS(ns); err != nil {
		return nil, err
	}
	return &Host{lab: l, name: name, ns: ns}, nil
}

// Name returns the name given to Lab.Host.
func (h *Host) Name() string { return h.name }

// Namespace returns the name of the host's namespace, as used by
// "ip netns exec".
func (h *Host) Namespace() string { return h.ns }

// Addrs returns the addresses given to Attach, in order.
func (h *Host) Addrs() []netip.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]netip.Addr(nil), h.addrs...)
}

// Attach plugs the host into network n with address addr (prefix length of
// the network) and returns the host-side interface name (eth0, eth1, …). It
// returns once both ends of the link are up. It fails the test on error.
func (h *Host) Attach(n *Network, addr string) string {
	h.lab.tb.Helper()
	ifname, err := h.attach(n, addr)
	h.lab.fatal(err)
	return ifname
}

func (h *Host) attach(n *Network, addr string) (string, error) { return h.attachLink(n, addr, 0) }

// attachLink is attach, with a delay line on the link if delay > 0 (see
// AttachDelayed).
func (h *Host) attachLink(n *Network, addr string, delay time.Duration) (string, error) {
	if n.lab != h.lab {
		return "", fmt.Errorf("netlab: network %s belongs to another lab", n.name)
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return "", fmt.Errorf("netlab: attach %s to %s: %w", h.name, n.name, err)
	}
	if err := checkBlackholed(a); err != nil {
		return "", err
	}
	port, err := n.reserve(h.name, a)
	if err != nil {
		return "", err
	}
	h.mu.Lock()
	ifname := fmt.Sprintf("eth%d", h.nifs)
	h.nifs++
	h.mu.Unlock()

	// Both ends are created inside lab namespaces: nothing touches root.
	steps := [][]string{
		{"-n", n.ns, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", h.ns},
		{"-n", n.ns, "link", "set", port, "master", "br0", "up"},
		{"-n", h.ns, "addr", "add", netip.PrefixFrom(a, n.prefix.Bits()).String(), "dev", ifname},
		{"-n", h.ns, "link", "set", ifname, "up"},
	}
	ports := []string{port}
	if delay > 0 {
		// port is not on the bridge: a second veth pair is, and a delay
		// line carries the frames between port and it.
		steps = [][]string{
			steps[0],
			{"-n", n.ns, "link", "add", port + "d", "type", "veth", "peer", "name", port + "b"},
			{"-n", n.ns, "link", "set", port + "b", "master", "br0", "up"},
			{"-n", n.ns, "link", "set", port + "d", "promisc", "on", "up"},
			{"-n", n.ns, "link", "set", port, "promisc", "on", "up"},
			steps[2], steps[3],
		}
		ports = append(ports, port+"d", port+"b")
	}
	for _, args := range steps {
		if _, err := run(nil, "ip", args...); err != nil {
			return "", err
		}
	}
	for _, p := range ports {
		if err := waitUp(n.ns, p); err != nil {
			return "", err
		}
	}
	if delay > 0 {
		if err := h.lab.startDelayLine(n, port, port+"d", delay); err != nil {
			return "", err
		}
	}
	if err := waitUp(h.ns, ifname); err != nil {
		return "", err
	}
	h.mu.Lock()
	h.addrs = append(h.addrs, a)
	h.mu.Unlock()
	return ifname, nil
}

// waitUp polls until dev in ns is operationally up, which is when the kernel
// has attached its qdisc; packets sent before that are dropped.
func waitUp(ns, dev string) error {
	deadline := time.Now().Add(linkUpTimeout)
	for {
		out, err := run(nil, "ip", "-n", ns, "-o", "link", "show", "dev", dev)
		if err == nil && strings.Contains(string(out), " state UP ") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netlab: %s in %s not up after %v: %s", dev, ns, linkUpTimeout, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// DefaultRoute sets the host's default route via gw. It fails the test on
// error.
func (h *Host) DefaultRoute(gw string) {
	h.lab.tb.Helper()
	_, err := run(nil, "ip", "-n", h.ns, "route", "replace", "default", "via", gw)
	h.lab.fatal(err)
}

// Sysctl sets a sysctl (dotted key, as for sysctl(8), or a path relative to
// /proc/sys) in the host's namespace and checks it by reading it back. It
// fails the test on error.
func (h *Host) Sysctl(key, value string) {
	h.lab.tb.Helper()
	h.lab.fatal(h.sysctl(key, value))
}

func (h *Host) sysctl(key, value string) error {
	path := "/proc/sys/" + key
	if !strings.Contains(key, "/") {
		path = "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	}
	return h.Do(func() error {
		// /proc/sys/net shows the namespace of the calling thread.
		if err := os.WriteFile(path, []byte(value+"\n"), 0); err != nil {
			return fmt.Errorf("netlab: %s: sysctl %s=%s: %w", h.name, key, value, err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("netlab: %s: sysctl %s: %w", h.name, key, err)
		}
		if g, w := strings.Join(strings.Fields(string(got)), " "), strings.Join(strings.Fields(value), " "); g != w {
			return fmt.Errorf("netlab: %s: sysctl %s reads back %q after writing %q", h.name, key, g, w)
		}
		return nil
	})
}

// Do runs fn on the calling goroutine with its OS thread switched into the
// host's network namespace, and switches back afterwards. Sockets made inside
// fn (net.Listen, net.Dial, net.ListenPacket) stay in the host's namespace
// and may be used from any goroutine after Do returns. Goroutines started by
// fn do not run in the namespace.
//
// If switching back fails, the thread is left locked so that the Go runtime
// terminates it when the goroutine exits, and Do returns an error.
func (h *Host) Do(fn func() error) (err error) {
	return h.lab.doIn(h.ns, h.name, fn)
}

// DialContext dials from inside the host's namespace (the connection stays
// there). With ListenPacket it makes a Host a socket factory for code that
// takes one, such as portmap.Config.Net.
func (h *Host) DialContext(ctx context.Context, network, addr string) (c net.Conn, err error) {
	if derr := h.Do(func() error {
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return nil
	}); derr != nil {
		return nil, derr
	}
	return c, err
}

// ListenPacket opens a packet socket inside the host's namespace.
func (h *Host) ListenPacket(ctx context.Context, network, addr string) (pc net.PacketConn, err error) {
	if derr := h.Do(func() error {
		pc, err = (&net.ListenConfig{}).ListenPacket(ctx, network, addr)
		return nil
	}); derr != nil {
		return nil, derr
	}
	return pc, err
}

// doIn runs fn with the calling goroutine's thread in namespace ns (of the
// host or network called name), as Host.Do does.
func (l *Lab) doIn(ns, name string, fn func() error) (err error) {
	if l.isClosed() {
		return ErrClosed
	}
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netlab: opening current namespace: %w", err)
	}
	defer unix.Close(orig)
	target, err := unix.Open(netnsDir+"/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netlab: opening namespace of %s: %w", name, err)
	}
	err = unix.Setns(target, unix.CLONE_NEWNET)
	unix.Close(target)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netlab: entering namespace of %s: %w", name, err)
	}
	defer func() {
		if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
			// Stay locked: this thread must never run other goroutines.
			err = errors.Join(err, fmt.Errorf("netlab: leaving namespace of %s (thread discarded): %w", name, rerr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

func (l *Lab) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}
