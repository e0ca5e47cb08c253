package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/tests/netlab"
)

// keepaliveNATs: two visitors behind port-preserving NATs that forget idle
// UDP mappings after 5 s and after 60 s, and one owner behind a
// port-preserving NAT with the kernel's UDP timeouts.
var keepaliveNATs = []natSpec{
	{"natk5", "198.51.100.41", "10.41.0", netlab.NATConfig{Mode: netlab.PortPreserving, UDPTimeout: 5 * time.Second}, []string{"vk5"}},
	{"natk60", "198.51.100.42", "10.42.0", netlab.NATConfig{Mode: netlab.PortPreserving, UDPTimeout: 60 * time.Second}, []string{"vk60"}},
	{"natko", "198.51.100.43", "10.43.0", netlab.NATConfig{Mode: netlab.PortPreserving}, []string{"ok"}},
}

// peerCounter counts, in nftables on a visitor's NAT, the UDP packets it
// forwards between the visitor and the owner's public address, both ways:
// the direct path's packets (STUN probes go to hops, not counted).
func peerCounter(t *testing.T, n *netlab.NAT, visitor, owner string) func() int64 {
	t.Helper()
	applyNft(t, n.Host, fmt.Sprintf("table ip hopka {\n\tcounter kapeer { }\n"+
		"\tchain kafwd {\n\t\ttype filter hook forward priority filter; policy accept;\n"+
		"\t\tip saddr %[1]s ip daddr %[2]s meta l4proto udp counter name \"kapeer\"\n"+
		"\t\tip saddr %[2]s ip daddr %[1]s meta l4proto udp counter name \"kapeer\"\n\t}\n}\n", visitor, owner))
	return func() int64 { return nftPackets(t, n.Host, "ip", "hopka", "kapeer") }
}

// TestP2PKeepaliveAuto: xtcp visitors with keepaliveInterval = "auto"
// behind a 5 s and a 60 s UDP NAT (both cells at once, one lab) learn
// their NAT's mapping lifetime from hops' STUN server, keep their direct
// path through an idle period longer than the NAT timeout (no move to the
// relay, the next transfer direct), and over that quiet period the path
// behind the 60 s NAT carries fewer keepalive packets than the one behind
// the 5 s NAT.
func TestP2PKeepaliveAuto(t *testing.T) {
	l := newP2PLabWith(t, keepaliveNATs)
	tcpPort, udpPort := ownerServices(t, l.hosts["ok"])
	l.startClient(t, "ok", ownerConfig("ok", tcpPort, udpPort))
	counter := newServerCounter(t, l.srvHost)

	cells := []struct {
		visitor, nat string
		natTimeout   time.Duration
		packets      func() int64
	}{
		{"vk5", "natk5", 5 * time.Second, nil},
		{"vk60", "natk60", 60 * time.Second, nil},
	}
	for i, c := range cells {
		l.startClient(t, c.visitor, visitorConfig("ok", "auto"))
		cells[i].packets = peerCounter(t, l.nats[c.nat], l.hosts[c.visitor].Addrs()[0].String(), "198.51.100.43")
	}
	// A first connection makes each visitor's link and punches its
	// direct path; learning starts with it.
	for _, c := range cells {
		if err := xtcpTransfer(l.hosts[c.visitor], 1<<20, 1); err != nil {
			t.Fatalf("%s: first transfer: %v", c.visitor, err)
		}
	}
	for _, c := range cells {
		v := l.clients[c.visitor]
		eventually(t, 30*time.Second, c.visitor+"'s direct path", func() bool {
			return v.count("connections moved to the direct path") > 0
		})
	}
	learnt := map[string]string{}
	for _, c := range cells {
		v := l.clients[c.visitor]
		eventually(t, 150*time.Second, c.visitor+" to learn its NAT's UDP timeout", func() bool {
			return converged(v) != ""
		})
		learnt[c.visitor] = converged(v)
		t.Logf("%s (NAT UDP timeout %v): %s", c.visitor, c.natTimeout, learnt[c.visitor])
	}
	if owner := converged(l.clients["ok"]); owner != "" {
		t.Logf("owner ok (kernel UDP timeout): %s", owner)
	}
	if !strings.Contains(learnt["vk5"], "path forgets idle UDP after ~") {
		t.Errorf("vk5 did not find the 5 s timeout: %s", learnt["vk5"])
	}

	// The quiet period: longer than both NAT timeouts, no traffic but
	// the keepalives.
	const quiet = 65 * time.Second
	lostBefore := map[string]int{}
	base := map[string]int64{}
	for _, c := range cells {
		v := l.clients[c.visitor]
		lostBefore[c.visitor] = v.count("direct path lost") + v.count("connections moved to the relay")
		base[c.visitor] = c.packets()
	}
	deadline := time.Now().Add(quiet)
	for time.Now().Before(deadline) { // polls for an early loss; the period itself is the test
		for _, c := range cells {
			v := l.clients[c.visitor]
			if n := v.count("direct path lost") + v.count("connections moved to the relay"); n != lostBefore[c.visitor] {
				t.Fatalf("%s lost its direct path while idle (NAT UDP timeout %v):\n%s", c.visitor, c.natTimeout, v.out.String())
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	counts := map[string]int64{}
	for _, c := range cells {
		counts[c.visitor] = c.packets() - base[c.visitor]
		t.Logf("%s: %d UDP packets between the peers at its NAT over %v idle", c.visitor, counts[c.visitor], quiet)
	}
	if counts["vk60"] >= counts["vk5"] {
		t.Errorf("behind the 60 s NAT %d packets, behind the 5 s NAT %d: want fewer behind 60 s", counts["vk60"], counts["vk5"])
	}
	if counts["vk5"] == 0 {
		t.Errorf("no packets counted behind the 5 s NAT: the counter does not see the path")
	}

	// Still direct: a transfer after the quiet period does not cross hops.
	for _, c := range cells {
		const size = 4 << 20
		before := counter.bytes(t)
		if err := xtcpTransfer(l.hosts[c.visitor], size, 2); err != nil {
			t.Fatalf("%s: transfer after the quiet period: %v", c.visitor, err)
		}
		if through := counter.bytes(t) - before; through > size {
			t.Errorf("%s: %d bytes crossed hops after the quiet period: the path fell back to the relay", c.visitor, through)
		}
	}
}

// converged returns the visitor's last "learned" line whose search had
// converged, with its message only, or "".
func converged(p *proc) string {
	last := ""
	for _, line := range strings.Split(p.out.String(), "\n") {
		if strings.Contains(line, "P2P keepalive interval learned") && strings.Contains(line, "converged=true") {
			last = line[strings.Index(line, "msg="):]
		}
	}
	return last
}

var counterPacketsRE = regexp.MustCompile(`packets (\d+)`)

// nftPackets reads the packets of a named nftables counter in h's
// namespace.
func nftPackets(t *testing.T, h *netlab.Host, family, table, name string) int64 {
	t.Helper()
	out, err := h.Run(context.Background(), "nft", "list", "counter", family, table, name)
	if err != nil {
		t.Fatal(err)
	}
	m := counterPacketsRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("counter %s %s %s: no packet count in %q", family, table, name, out)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}
