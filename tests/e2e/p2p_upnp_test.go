package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/tests/netlab"
)

// The port-mapping cells (issue 9): owners behind NATs that map every
// destination to a new port (netlab.RandomPort), whose gateways run a real
// miniupnpd in different configurations or answer nothing, and visitors
// behind NAT Q (random ports too, no port-mapping daemon). Without a
// mapped port such a pair can only relay; with one it goes direct.
//
// The path of each transfer is measured twice: by the server's record of
// the attempt (path=mapped) and by nftables counters on the server's host,
// which count the bytes hops sends to the owner's NAT (relayed bulk goes
// through them, direct bulk does not).

// upnpNAT is one owner NAT of the port-mapping lab.
type upnpNAT struct {
	name, wanIP, lan, owner string
	upnp                    *netlab.MiniupnpdConfig // nil: no daemon
	silent                  bool                    // drop PCP/NAT-PMP/SSDP without an answer
}

var upnpNATs = []upnpNAT{
	// NAT-PMP and PCP only.
	{name: "natp", wanIP: "198.51.100.31", lan: "10.11.0", owner: "op", upnp: &netlab.MiniupnpdConfig{DisableUPnP: true, ExtIP: "11.45.71.1"}},
	// UPnP IGD only; its HTTP port moves on every restart.
	{name: "natu", wanIP: "198.51.100.32", lan: "10.12.0", owner: "ou", upnp: &netlab.MiniupnpdConfig{DisableNATPMP: true, ExtIP: "11.45.72.1"}},
	// Everything on: restarted mid-session.
	{name: "natr", wanIP: "198.51.100.33", lan: "10.13.0", owner: "or", upnp: &netlab.MiniupnpdConfig{ExtIP: "11.45.73.1"}},
	// A gateway that answers nothing, not even ICMP.
	{name: "natz", wanIP: "198.51.100.34", lan: "10.14.0", owner: "oz", silent: true},
}

// upnpVisitors are the visitor hosts behind NAT Q, one per visitor hopc
// (each binds the same local ports 9001/9002).
var upnpVisitors = []string{"vp", "vp2", "vu", "vu2", "vr", "vr2", "vz"}

// upnpLab is a p2pLab with the owner NATs above and the daemons.
type upnpLab struct {
	*p2pLab
	daemons map[string]*netlab.Miniupnpd // by owner
	natOf   map[string]upnpNAT           // by owner
}

func newUPnPLab(t *testing.T) *upnpLab {
	netlab.RequireMiniupnpd(t)
	lab := netlab.New(t)
	l := &upnpLab{
		p2pLab:  &p2pLab{lab: lab, hosts: map[string]*netlab.Host{}, nats: map[string]*netlab.NAT{}, clients: map[string]*proc{}},
		daemons: map[string]*netlab.Miniupnpd{},
		natOf:   map[string]upnpNAT{},
	}
	wan := lab.Network("wan", "198.51.100.0/24")
	l.srvHost = lab.Host("srv")
	l.srvHost.Attach(wan, "198.51.100.10")
	l.srvHost.Attach(wan, "198.51.100.11")

	lanQ := lab.Network("lnatq", "10.4.0.0/24")
	l.nats["natq"] = lab.NAT("natq", wan, "198.51.100.24", lanQ, "10.4.0.1", netlab.NATConfig{Mode: netlab.RandomPort})
	for i, v := range upnpVisitors {
		h := lab.Host(v)
		h.Attach(lanQ, fmt.Sprintf("10.4.0.%d", 10+i))
		h.DefaultRoute("10.4.0.1")
		l.hosts[v] = h
	}
	for _, n := range upnpNATs {
		g := lab.Gateway(netlab.GatewayConfig{Name: n.name, WAN: wan, WANAddr: n.wanIP, LAN: n.lan + ".0/24",
			Host: n.owner, NAT: netlab.NATConfig{Mode: netlab.RandomPort}, Miniupnpd: n.upnp})
		l.nats[n.name] = g.NAT
		l.hosts[n.owner] = g.Host
		l.natOf[n.owner] = n
		if g.Miniupnpd != nil {
			l.daemons[n.owner] = g.Miniupnpd
		}
		if n.silent {
			if err := g.NAT.DropPortMapping(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Counters of the bytes hops sends to each owner NAT.
	var rules strings.Builder
	rules.WriteString("table inet hopcount {\n")
	for _, n := range upnpNATs {
		fmt.Fprintf(&rules, "\tcounter to_%s { }\n", n.name)
	}
	rules.WriteString("\tchain out {\n\t\ttype filter hook output priority filter; policy accept;\n")
	for _, n := range upnpNATs {
		fmt.Fprintf(&rules, "\t\tip daddr %s counter name \"to_%s\"\n", n.wanIP, n.name)
	}
	rules.WriteString("\t}\n}\n")
	applyNft(t, l.srvHost, rules.String())

	srvCfg := "bindAddr = \"198.51.100.10\"\nbindPort = 7000\nauth.token = \"e2e-secret\"\ngracePeriod = \"1s\"\n" +
		"[p2p]\nstunAltPort = 7001\nstunAltAddr = \"198.51.100.11\"\n"
	l.srv = startIn(t, l.srvHost, "hops", srvCfg)
	eventually(t, ready, "hops to listen", func() bool { return l.srv.count("msg=listening") == 1 })
	return l
}

// sentTo returns the bytes hops's host has sent to the owner's NAT.
func (l *upnpLab) sentTo(t *testing.T, owner string) int64 {
	t.Helper()
	return nftCounter(t, l.srvHost, "inet", "hopcount", "to_"+l.natOf[owner].name)
}

// startOwner starts the owner's hopc with an xtcp and an xudp proxy.
func (l *upnpLab) startOwner(t *testing.T, owner string) {
	t.Helper()
	tcpPort, udpPort := ownerServices(t, l.hosts[owner])
	l.startClient(t, owner, ownerConfig(owner, tcpPort, udpPort))
}

// visit starts a visitor hopc on host v, for owner's proxies, and waits
// for its port.
func (l *upnpLab) visit(t *testing.T, v, owner string) {
	t.Helper()
	l.startVisitor(t, v, visitorConfig(owner, "10s"))
}

// upnpCell is the outcome of one visitor's pair of attempts.
type upnpCell struct {
	name, outcome, xudp, path string
	relayedBytes              int64 // bytes hops sent the owner's NAT during the bulk transfer
	took                      time.Duration
}

// upnpBulk is the size of the counted transfer over a direct path;
// upnpRelayBulk over a relayed one (relaying under -race is slow, and 1 MB
// is already far above what a direct path leaves on the server).
const (
	upnpBulk      = 4 << 20
	upnpRelayBulk = 1 << 20
)

// runPair connects visitor v to owner through xtcp (a first transfer that
// triggers the attempt, then the bulk over the path found, counted on the
// server) and xudp, and checks the outcome the server records: want
// "direct" (then via a mapped candidate, with the bulk not crossing hops)
// or "failed" (relayed: the bulk crosses hops).
func (l *upnpLab) runPair(t *testing.T, v, owner, want string, seed uint64) upnpCell {
	t.Helper()
	start := time.Now()
	h := l.hosts[v]
	if err := xtcpTransfer(h, 256<<10, seed); err != nil {
		t.Fatalf("xtcp: %v", err)
	}
	m := l.waitAttempt(t, 20*time.Second, v, owner, "xtcp")
	bulk := int64(upnpBulk)
	if want != "direct" {
		bulk = upnpRelayBulk
	}
	before := l.sentTo(t, owner)
	if err := xtcpTransfer(h, bulk, seed+1); err != nil {
		t.Fatalf("xtcp after the attempt: %v", err)
	}
	relayed := l.sentTo(t, owner) - before
	if err := xudpEcho(h, 20); err != nil {
		t.Fatalf("xudp: %v", err)
	}
	mu := l.waitAttempt(t, 20*time.Second, v, owner, "xudp")
	c := upnpCell{name: v + "->" + owner, outcome: m[6], xudp: mu[6], path: l.attemptPath(v, owner, "xtcp"),
		relayedBytes: relayed, took: time.Since(start)}
	if m[6] != want || mu[6] != want {
		t.Errorf("%s: outcome xtcp %s, xudp %s; want %s", c.name, m[6], mu[6], want)
	}
	switch want {
	case "direct":
		for _, typ := range []string{"xtcp", "xudp"} {
			if p := l.attemptPath(v, owner, typ); p != "mapped" {
				t.Errorf("%s: %s path to a %q candidate, want \"mapped\"", c.name, typ, p)
			}
		}
		if relayed > bulk/10 {
			t.Errorf("%s: hops sent %d bytes to the owner's NAT during a direct %d-byte transfer", c.name, relayed, bulk)
		}
	case "failed":
		if relayed < bulk {
			t.Errorf("%s: hops sent only %d bytes to the owner's NAT during a relayed %d-byte transfer", c.name, relayed, bulk)
		}
	}
	return c
}

// mappedInternal returns the internal ports of the DNAT rules miniupnpd
// holds on the owner's gateway.
func (l *upnpLab) mappedInternal(t *testing.T, owner string) []string {
	t.Helper()
	rules, err := l.daemons[owner].Rules()
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(regexp.QuoteMeta(l.natOf[owner].lan+".10") + `:(\d+)`)
	var ports []string
	for _, m := range re.FindAllStringSubmatch(rules, -1) {
		ports = append(ports, m[1])
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

// restartGateway restarts the owner's miniupnpd (a router reboot: its
// rules gone, a new epoch, a new control URL) while visitor first holds a
// direct path through the owner's mappings. A new visitor, second, then
// goes direct (runPair with seed), the owner re-creates every mapping it
// held and logs reason, and first's path still carries its connections
// directly (a bulk transfer with firstSeed). second's cell goes to
// record as soon as it is measured.
func (l *upnpLab) restartGateway(t *testing.T, record func(upnpCell), owner, first, second string, seed, firstSeed uint64, reason string) {
	t.Helper()
	held := l.mappedInternal(t, owner)
	if len(held) == 0 {
		t.Fatalf("no mapping on %s while the paths are up", l.natOf[owner].name)
	}
	if err := l.daemons[owner].Restart(); err != nil {
		t.Fatal(err)
	}
	if now := l.mappedInternal(t, owner); len(now) != 0 {
		t.Fatalf("the restarted miniupnpd still maps %v", now)
	}
	start := time.Now()
	l.visit(t, second, owner)
	c := l.runPair(t, second, owner, "direct", seed)
	c.name += " (after restart)"
	eventually(t, 20*time.Second, "the owner's mappings re-created on the restarted gateway", func() bool {
		now := l.mappedInternal(t, owner)
		for _, p := range held {
			if !slices.Contains(now, p) {
				return false
			}
		}
		return true
	})
	c.took = time.Since(start)
	record(c)
	if l.clients[owner].count(reason) == 0 {
		t.Errorf("the owner does not say it re-created its mappings (no %q in its log)", reason)
	}
	t.Logf("the owner's port mapping after the restart:\n%s", portmapLines(l.clients[owner]))
	before := l.sentTo(t, owner)
	if err := xtcpTransfer(l.hosts[first], upnpBulk, firstSeed); err != nil {
		t.Fatalf("the first visitor after the restart: %v", err)
	}
	if n := l.sentTo(t, owner) - before; n > upnpBulk/10 {
		t.Errorf("hops sent %d bytes to the owner's NAT during the first visitor's transfer after the restart", n)
	}
}

// portmapLines returns the port-mapping lines of a hopc's log.
func portmapLines(p *proc) string {
	var b strings.Builder
	for _, line := range strings.Split(p.out.String(), "\n") {
		if strings.Contains(line, "component=portmap") || strings.Contains(line, "port mapping") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

const noGatewayLine = `msg="no port-mapping gateway: UPnP, NAT-PMP and PCP unanswered"`

// TestP2PPortMapping runs the port-mapping cells of issue 9 and prints
// them with their outcome, the bytes hops relayed during each bulk
// transfer and the time each cell took.
func TestP2PPortMapping(t *testing.T) {
	began := time.Now()
	l := newUPnPLab(t)
	t.Logf("lab ready in %v", time.Since(began).Round(time.Millisecond))
	var cells []upnpCell
	record := func(c upnpCell) { cells = append(cells, c) }

	t.Run("natpmp-pcp only", func(t *testing.T) {
		l.startOwner(t, "op")
		l.hopcNAT(t, "op", "port mapping (gateway 10.11.0.1)", "PCP:              yes", "NAT-PMP:          yes",
			"UPnP IGD:         no", "answered:         PCP, NAT-PMP", "via PCP", "test mapping deleted: yes")
		l.visit(t, "vp", "op")
		record(l.runPair(t, "vp", "op", "direct", 10))

		// The daemon stops mid-session (port mapping turned off on the
		// router): the owner's next attempt finds no gateway and says so
		// once, and connections still work, relayed (both NATs map every
		// destination to a new port).
		if err := l.daemons["op"].Stop(); err != nil {
			t.Fatal(err)
		}
		// The punch of the new visitor fails only after its timeout; the
		// connections do not wait for that, so neither does this cell:
		// the counter shows the bulk relayed while the attempt runs.
		start := time.Now()
		l.visit(t, "vp2", "op")
		h := l.hosts["vp2"]
		if err := xtcpTransfer(h, 256<<10, 11); err != nil {
			t.Fatalf("xtcp with the daemon stopped: %v", err)
		}
		before := l.sentTo(t, "op")
		if err := xtcpTransfer(h, upnpRelayBulk, 12); err != nil {
			t.Fatalf("xtcp with the daemon stopped: %v", err)
		}
		relayed := l.sentTo(t, "op") - before
		if relayed < upnpRelayBulk {
			t.Errorf("hops sent only %d bytes to the owner's NAT during a %d-byte transfer with the daemon stopped: not relayed?", relayed, upnpRelayBulk)
		}
		if err := xudpEcho(h, 5); err != nil {
			t.Fatalf("xudp with the daemon stopped: %v", err)
		}
		eventually(t, 20*time.Second, "the owner to say that no gateway answers", func() bool {
			return l.clients["op"].count(noGatewayLine) >= 1
		})
		record(upnpCell{name: "vp2->op (daemon stopped)", outcome: "relayed", xudp: "worked", relayedBytes: relayed, took: time.Since(start)})
		if n := l.clients["op"].count(noGatewayLine); n != 1 {
			t.Errorf("the owner logged %d times that no gateway answered, want once", n)
		}
		// The first visitor's path, made through the mapping, lives on.
		if err := xtcpTransfer(l.hosts["vp"], 256<<10, 13); err != nil {
			t.Fatalf("the first visitor after the daemon stopped: %v", err)
		}
	})

	t.Run("upnp only", func(t *testing.T) {
		l.startOwner(t, "ou")
		l.hopcNAT(t, "ou", "port mapping (gateway 10.12.0.1)", "PCP:              no", "NAT-PMP:          no",
			"UPnP IGD:         yes (WANIPConnection:", "answered:         UPnP IGD", "via UPnP IGD", "test mapping deleted: yes")
		l.visit(t, "vu", "ou")
		record(l.runPair(t, "vu", "ou", "direct", 20))

		// The router restarts: its rules are gone and its UPnP control URL
		// moves. The owner finds the gateway again on its next request
		// and re-creates its mappings; a new visitor goes direct.
		l.restartGateway(t, record, "ou", "vu", "vu2", 30, 21, "found again; re-creating every mapping")
	})

	t.Run("miniupnpd restarted", func(t *testing.T) {
		l.startOwner(t, "or")
		l.visit(t, "vr", "or")
		record(l.runPair(t, "vr", "or", "direct", 40))
		l.restartGateway(t, record, "or", "vr", "vr2", 50, 41, "epoch went back); re-creating every mapping")
		// On a clean exit the owner deletes its mappings.
		l.clients["or"].interrupt(10 * time.Second)
		delete(l.clients, "or")
		if now := l.mappedInternal(t, "or"); len(now) != 0 {
			t.Errorf("after the owner's clean exit miniupnpd still maps %v", now)
		}
	})

	t.Run("silent gateway", func(t *testing.T) {
		l.startOwner(t, "oz")
		// hopc nat says so within a bound (each protocol's timeout).
		start := time.Now()
		l.hopcNAT(t, "oz", "port mapping (gateway 10.14.0.1)", "PCP:              no", "NAT-PMP:          no",
			"UPnP IGD:         no", "No gateway answers port-mapping requests")
		t.Logf("hopc nat with a silent gateway took %v", time.Since(start).Round(time.Millisecond))
		l.visit(t, "vz", "oz")
		record(l.runPair(t, "vz", "oz", "failed", 60))
		// A second visitor session: more attempts, still one line.
		l.clients["vz"].interrupt(10 * time.Second)
		delete(l.clients, "vz")
		l.visit(t, "vz", "oz")
		if err := xtcpTransfer(l.hosts["vz"], 256<<10, 61); err != nil {
			t.Fatalf("xtcp with the visitor restarted: %v", err)
		}
		eventually(t, 20*time.Second, "the second attempt", func() bool { return countAttempts(l.srv.out.String(), "vz", "xtcp") >= 2 })
		eventually(t, 20*time.Second, "the owner to say once that no gateway answers", func() bool {
			return l.clients["oz"].count(noGatewayLine) >= 1
		})
		for _, c := range []string{"oz", "vz"} {
			if n := l.clients[c].count(noGatewayLine); n != 1 {
				t.Errorf("%s logged %d times that no gateway answered, want once", c, n)
			}
		}
		t.Logf("the owner's port-mapping lines:\n%s", portmapLines(l.clients["oz"]))
		// And it exits promptly, with no Map left hanging.
		start = time.Now()
		if code := l.clients["oz"].interrupt(10 * time.Second); code != 0 {
			t.Errorf("the owner exited with %d", code)
		}
		delete(l.clients, "oz")
		t.Logf("the owner behind the silent gateway exited in %v", time.Since(start).Round(time.Millisecond))
	})

	// Every visitor sits behind NAT Q, which has no daemon: each says
	// once that nothing answers.
	for _, v := range upnpVisitors {
		if p := l.clients[v]; p != nil {
			if n := p.count(noGatewayLine); n > 1 {
				t.Errorf("visitor %s logged %d times that no gateway answered", v, n)
			}
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\nport-mapping cells (visitor behind NAT Q, random ports, no daemon):\n%-26s %-8s %-8s %-8s %-14s %s\n",
		"cell", "xtcp", "xudp", "path", "relayed bytes", "took")
	for _, c := range cells {
		fmt.Fprintf(&b, "%-26s %-8s %-8s %-8s %-14d %v\n", c.name, c.outcome, c.xudp, c.path, c.relayedBytes, c.took.Round(10*time.Millisecond))
	}
	fmt.Fprintf(&b, "total %v\n", time.Since(began).Round(10*time.Millisecond))
	t.Log(b.String())
}
