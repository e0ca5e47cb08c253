package netlab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DefaultMiniupnpdExtIP is the external address MiniupnpdConfig uses when
// ExtIP is not set. miniupnpd refuses reserved and private external
// addresses (the TEST-NETs, 198.18.0.0/15, 100.64.0.0/10, RFC 1918...), so
// this is an ordinary unicast address; the lab blackholes its /24 in the
// root namespace, so nothing addressed to it can leave the machine.
const DefaultMiniupnpdExtIP = "11.45.67.1"

// miniupnpdStopTimeout bounds the wait for miniupnpd to exit on SIGTERM
// before it is killed.
const miniupnpdStopTimeout = 5 * time.Second

// miniupnpdReadyTimeout bounds the wait for miniupnpd's sockets.
const miniupnpdReadyTimeout = 10 * time.Second

// MiniupnpdConfig configures a miniupnpd on a lab NAT.
type MiniupnpdConfig struct {
	// ExtIP is the external address miniupnpd reports (ext_ip). It is
	// added as a second address (/32) on the NAT's WAN interface and its
	// /24 is blackholed in the root namespace. Default
	// DefaultMiniupnpdExtIP. miniupnpd's DNAT rules match the WAN
	// interface and port, so mappings also answer on the NAT's lab WAN
	// address.
	ExtIP string

	// DisableUPnP writes enable_upnp=no; DisableNATPMP writes
	// enable_natpmp=no (which turns off PCP too).
	DisableUPnP, DisableNATPMP bool

	// HTTPPort is the UPnP HTTP port; 0 lets miniupnpd pick a new random
	// port on every start, so a restart moves the control URL.
	HTTPPort int

	// MinLifetime is the shortest PCP/NAT-PMP lifetime granted (seconds,
	// min_lifetime); default 2, so tests can renew quickly.
	MinLifetime int
}

// A Miniupnpd is a miniupnpd daemon (Debian package miniupnpd-nftables)
// running on a lab NAT, stopped by PID on Stop or when the lab closes.
type Miniupnpd struct {
	nat  *NAT
	cfg  MiniupnpdConfig
	ext  netip.Addr
	bin  string
	conf string
	dir  string
	proc *Proc
}

// MiniupnpdPath returns the path of the miniupnpd binary, looking in PATH
// and in /usr/sbin (not in PATH for every user).
func MiniupnpdPath() (string, error) {
	if p, err := exec.LookPath("miniupnpd"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/miniupnpd"); err == nil {
		return "/usr/sbin/miniupnpd", nil
	}
	return "", errors.New("netlab: miniupnpd not found (apt-get install miniupnpd-nftables)")
}

// RequireMiniupnpd returns the miniupnpd path, or skips tb (fails it with
// HOP_REQUIRE_NETLAB=1) when it is not installed.
func RequireMiniupnpd(tb testing.TB) string {
	tb.Helper()
	p, err := MiniupnpdPath()
	if err != nil {
		msg := "netlab: needs miniupnpd (Debian package miniupnpd-nftables; .ci/run installs it): " + err.Error()
		if os.Getenv(RequireEnv) == "1" {
			tb.Fatalf("%s (%s=1 forbids skipping)", msg, RequireEnv)
		}
		tb.Skip(msg)
	}
	return p
}

// Miniupnpd sets up n for miniupnpd and starts it: the external address on
// the WAN interface (blackholed in root), an nftables table "miniupnpd"
// with the chains miniupnpd fills (forward filter, prerouting DNAT,
// postrouting), and a rule in the NAT's own forward chain accepting
// connections that miniupnpd's DNAT redirected (without it the NAT's drop
// policy would stop them). It returns once miniupnpd listens. It fails the
// test on error; call it from the test's goroutine.
func (n *NAT) Miniupnpd(cfg MiniupnpdConfig) *Miniupnpd {
	n.lab.tb.Helper()
	d, err := n.miniupnpd(cfg)
	n.lab.fatal(err)
	return d
}

func (n *NAT) miniupnpd(cfg MiniupnpdConfig) (*Miniupnpd, error) {
	bin, err := MiniupnpdPath()
	if err != nil {
		return nil, err
	}
	if cfg.ExtIP == "" {
		cfg.ExtIP = DefaultMiniupnpdExtIP
	}
	if cfg.MinLifetime == 0 {
		cfg.MinLifetime = 2
	}
	if cfg.HTTPPort < 0 || cfg.HTTPPort > 65535 || cfg.MinLifetime < 0 {
		return nil, fmt.Errorf("netlab: MiniupnpdConfig: HTTPPort %d or MinLifetime %d out of range", cfg.HTTPPort, cfg.MinLifetime)
	}
	ext, err := netip.ParseAddr(cfg.ExtIP)
	if err != nil || !ext.Is4() {
		return nil, fmt.Errorf("netlab: MiniupnpdConfig.ExtIP %q: want an IPv4 address", cfg.ExtIP)
	}
	p, err := ext.Prefix(24)
	if err != nil {
		return nil, err
	}
	if err := n.lab.blackhole(p); err != nil {
		return nil, err
	}
	if err := checkBlackholed(ext); err != nil {
		return nil, err
	}
	if _, err := run(nil, "ip", "-n", n.ns, "addr", "add", ext.String()+"/32", "dev", n.wanIf); err != nil {
		return nil, err
	}
	rules := `table inet miniupnpd {
	chain forward { type filter hook forward priority filter + 1; policy accept; jump miniupnpd; }
	chain miniupnpd { }
	chain prerouting { type nat hook prerouting priority dstnat; policy accept; jump prerouting_miniupnpd; }
	chain postrouting { type nat hook postrouting priority srcnat - 1; policy accept; jump postrouting_miniupnpd; }
	chain prerouting_miniupnpd { }
	chain postrouting_miniupnpd { }
}
add rule ip netlab forward ct status dnat accept
`
	if _, err := run([]byte(rules), "ip", "netns", "exec", n.ns, "nft", "-f", "-"); err != nil {
		return nil, err
	}
	dir := n.lab.tb.TempDir()
	d := &Miniupnpd{nat: n, cfg: cfg, ext: ext, bin: bin, dir: dir, conf: filepath.Join(dir, "miniupnpd.conf")}
	if err := os.WriteFile(d.conf, []byte(d.config()), 0o600); err != nil {
		return nil, err
	}
	if err := d.Start(); err != nil {
		return nil, err
	}
	return d, nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// config returns the miniupnpd.conf text.
func (d *Miniupnpd) config() string {
	lan := d.nat.lan
	var b strings.Builder
	fmt.Fprintf(&b, "ext_ifname=%s\n", d.nat.wanIf)
	fmt.Fprintf(&b, "ext_ip=%s\n", d.ext)
	fmt.Fprintf(&b, "listening_ip=%s\n", d.nat.lanIf)
	fmt.Fprintf(&b, "http_port=%d\n", d.cfg.HTTPPort)
	fmt.Fprintf(&b, "enable_upnp=%s\n", yesNo(!d.cfg.DisableUPnP))
	fmt.Fprintf(&b, "enable_natpmp=%s\n", yesNo(!d.cfg.DisableNATPMP))
	fmt.Fprintf(&b, "min_lifetime=%d\n", d.cfg.MinLifetime)
	b.WriteString("secure_mode=yes\nsystem_uptime=no\n")
	b.WriteString("upnp_table_name=miniupnpd\nupnp_nat_table_name=miniupnpd\n")
	b.WriteString("uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b\n")
	// Only the NAT's own LAN may map, and only unprivileged ports.
	fmt.Fprintf(&b, "allow 1024-65535 %s 1024-65535\n", netip.PrefixFrom(lan, 24).Masked())
	b.WriteString("deny 0-65535 0.0.0.0/0 0-65535\n")
	return b.String()
}

// ExtIP returns the external address miniupnpd reports.
func (d *Miniupnpd) ExtIP() netip.Addr { return d.ext }

// Config returns the configuration file miniupnpd runs with.
func (d *Miniupnpd) Config() string { return d.config() }

// Proc returns the running process, or nil after Stop.
func (d *Miniupnpd) Proc() *Proc { return d.proc }

// Output returns what the current (or last) process logged.
func (d *Miniupnpd) Output() []byte {
	if d.proc == nil {
		return nil
	}
	return d.proc.Output()
}

// Start starts miniupnpd in the foreground (-d, logging to its output) and
// waits until its sockets listen: UDP 5351 unless NAT-PMP is disabled, and
// its HTTP port unless UPnP is disabled.
func (d *Miniupnpd) Start() error {
	if d.proc != nil {
		return fmt.Errorf("netlab: miniupnpd on %s already running (pid %d)", d.nat.name, d.proc.Cmd.Process.Pid)
	}
	pid := filepath.Join(d.dir, "miniupnpd.pid")
	p, err := d.nat.Start(context.Background(), d.bin, "-d", "-f", d.conf, "-P", pid)
	if err != nil {
		return err
	}
	d.proc = p
	deadline := time.Now().Add(miniupnpdReadyTimeout)
	tag := fmt.Sprintf("pid=%d,", p.Cmd.Process.Pid)
	for {
		ready := true
		if !d.cfg.DisableNATPMP {
			out, err := run(nil, "ip", "netns", "exec", d.nat.ns, "ss", "-Hlunp", "sport", "=", ":5351")
			ready = ready && err == nil && strings.Contains(string(out), tag)
		}
		if !d.cfg.DisableUPnP {
			out, err := run(nil, "ip", "netns", "exec", d.nat.ns, "ss", "-Hltnp")
			ready = ready && err == nil && strings.Contains(string(out), tag)
		}
		if ready {
			return nil
		}
		select {
		case <-p.Done():
			d.proc = nil
			return fmt.Errorf("netlab: miniupnpd on %s exited at start: %v: %s", d.nat.name, p.Wait(), p.Output())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netlab: miniupnpd on %s not listening after %v: %s", d.nat.name, miniupnpdReadyTimeout, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends miniupnpd by PID: SIGTERM (it removes its rules), then SIGKILL
// after a few seconds.
func (d *Miniupnpd) Stop() error {
	p := d.proc
	if p == nil {
		return nil
	}
	d.proc = nil
	if err := p.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.Done():
		return nil
	case <-time.After(miniupnpdStopTimeout):
		return p.Kill()
	}
}

// Restart simulates a router reboot: it stops miniupnpd, flushes its chains
// (miniupnpd leaves its rules in place on exit and adopts them at start;
// a rebooted router has none) and starts it again. The new daemon knows no
// mapping, its PCP/NAT-PMP epoch starts again from 0 and, with HTTPPort 0,
// its UPnP control URL moves.
func (d *Miniupnpd) Restart() error {
	if err := d.Stop(); err != nil {
		return err
	}
	flush := "flush chain inet miniupnpd miniupnpd\n" +
		"flush chain inet miniupnpd prerouting_miniupnpd\n" +
		"flush chain inet miniupnpd postrouting_miniupnpd\n"
	if _, err := run([]byte(flush), "ip", "netns", "exec", d.nat.ns, "nft", "-f", "-"); err != nil {
		return err
	}
	return d.Start()
}

// Rules returns miniupnpd's current DNAT rules (nft list chain), one a line.
func (d *Miniupnpd) Rules() (string, error) {
	out, err := run(nil, "ip", "netns", "exec", d.nat.ns, "nft", "list", "chain", "inet", "miniupnpd", "prerouting_miniupnpd")
	return string(out), err
}

// GatewayConfig describes a home network for port-mapping tests: a NAT
// between wan and a LAN of its own, one host on that LAN, and optionally a
// miniupnpd on the NAT.
type GatewayConfig struct {
	// Name names the NAT; its LAN network is "l"+Name.
	Name string
	// WAN is the network the NAT's WAN leg is on, at WANAddr.
	WAN     *Network
	WANAddr string
	// LAN is the LAN's IPv4 /24 ("10.1.0.0/24"): the NAT takes its .1,
	// the host its .10, with its default route through the NAT.
	LAN string
	// Host names the LAN host.
	Host string
	// NAT configures the NAT.
	NAT NATConfig
	// Miniupnpd, if not nil, starts a miniupnpd on the NAT with this
	// configuration; its output is logged if the test fails.
	Miniupnpd *MiniupnpdConfig
}

// A Gateway is what Lab.Gateway built.
type Gateway struct {
	NAT  *NAT
	LAN  *Network
	Host *Host
	// Miniupnpd is nil unless GatewayConfig.Miniupnpd was set.
	Miniupnpd *Miniupnpd
}

// Gateway builds the home network cfg describes. It fails the test on
// error (a LAN that is not an IPv4 /24 too); call it from the test's
// goroutine. With cfg.Miniupnpd set, call RequireMiniupnpd before New so
// that a machine without miniupnpd skips before building a lab.
func (l *Lab) Gateway(cfg GatewayConfig) *Gateway {
	l.tb.Helper()
	p, err := netip.ParsePrefix(cfg.LAN)
	if err != nil || !p.Addr().Is4() || p.Bits() != 24 || p.Masked() != p {
		l.fatal(fmt.Errorf("netlab: GatewayConfig.LAN %q: want an IPv4 /24 network", cfg.LAN))
	}
	at := func(last byte) string {
		a := p.Addr().As4()
		a[3] = last
		return netip.AddrFrom4(a).String()
	}
	g := &Gateway{LAN: l.Network("l"+cfg.Name, cfg.LAN)}
	g.NAT = l.NAT(cfg.Name, cfg.WAN, cfg.WANAddr, g.LAN, at(1), cfg.NAT)
	g.Host = l.Host(cfg.Host)
	g.Host.Attach(g.LAN, at(10))
	g.Host.DefaultRoute(at(1))
	if cfg.Miniupnpd != nil {
		d := g.NAT.Miniupnpd(*cfg.Miniupnpd)
		g.Miniupnpd = d
		l.tb.Cleanup(func() {
			if l.tb.Failed() {
				l.tb.Logf("miniupnpd on %s:\n%s", cfg.Name, d.Output())
			}
		})
	}
	return g
}

// DropPortMapping makes the NAT a gateway that answers no port-mapping
// request: what arrives at it on UDP 5351 (PCP, NAT-PMP) and 1900 (SSDP)
// is dropped without a word, not even an ICMP port unreachable.
func (n *NAT) DropPortMapping() error {
	_, err := run(nil, "ip", "netns", "exec", n.ns, "nft", "add", "rule", "ip", "netlab", "input", "udp", "dport", "{ 1900, 5351 }", "drop")
	return err
}
