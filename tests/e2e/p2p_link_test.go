package e2e

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hopproxy/hop/tests/netlab"
)

// linkNATs: two port-preserving NATs (their pair punches) and two
// random-port ones (their pair relays).
var linkNATs = []natSpec{
	{"nata", "198.51.100.21", "10.1.0", netlab.NATConfig{Mode: netlab.PortPreserving}, []string{"oa"}},
	{"natb", "198.51.100.22", "10.2.0", netlab.NATConfig{Mode: netlab.PortPreserving}, []string{"vb"}},
	{"natr", "198.51.100.23", "10.3.0", netlab.NATConfig{Mode: netlab.RandomPort}, []string{"or"}},
	{"natq", "198.51.100.24", "10.4.0", netlab.NATConfig{Mode: netlab.RandomPort}, []string{"vq"}},
	// Networks that drop all UDP (many offices and guest Wi-Fi), with
	// port-preserving NATs for TCP.
	{"natd", "198.51.100.27", "10.7.0", netlab.NATConfig{Mode: netlab.PortPreserving, DropUDP: true}, []string{"od"}},
	{"nate", "198.51.100.28", "10.8.0", netlab.NATConfig{Mode: netlab.PortPreserving, DropUDP: true}, []string{"ve"}},
}

// serverCounter counts, in nftables on the server's host, the bytes of
// hop's TCP port in both directions: what the server relays, whatever hop
// itself logs.
type serverCounter struct{ h *netlab.Host }

func newServerCounter(t *testing.T, h *netlab.Host) serverCounter {
	t.Helper()
	applyNft(t, h, "table inet hopcount {\n\tcounter in { }\n\tcounter out { }\n"+
		"\tchain in {\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport 7000 counter name \"in\"\n\t}\n"+
		"\tchain out {\n\t\ttype filter hook output priority filter; policy accept;\n\t\ttcp sport 7000 counter name \"out\"\n\t}\n}\n")
	return serverCounter{h}
}

// bytes is the sum of both counters.
func (c serverCounter) bytes(t *testing.T) int64 {
	t.Helper()
	return nftCounter(t, c.h, "inet", "hopcount", "in") + nftCounter(t, c.h, "inet", "hopcount", "out")
}

var errDigest = errors.New("digest mismatch")

// dialVisitor connects to the visitor's xtcp port inside its namespace.
func dialVisitor(h *netlab.Host) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() (err error) { c, err = net.DialTimeout("tcp", "127.0.0.1:9001", 5*time.Second); return })
	return c, err
}

// TestP2PLink: relay-first links and their live moves between the relay
// and the direct path, measured by the server's byte counters.
func TestP2PLink(t *testing.T) {
	l := newP2PLabWith(t, linkNATs)
	for _, owner := range []string{"oa", "or", "od"} {
		tcpPort, udpPort := ownerServices(t, l.hosts[owner])
		l.startClient(t, owner, ownerConfig(owner, tcpPort, udpPort))
	}
	counter := newServerCounter(t, l.srvHost)

	// The first connection of a visitor whose pair can only relay gets its
	// first byte at relay latency: it does not wait for the punch.
	t.Run("relay first", func(t *testing.T) {
		l.startClient(t, "vq", visitorConfig("or", "10s"))
		h := l.hosts["vq"]
		start := time.Now()
		c, err := dialVisitor(h)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		c.Write([]byte("x"))
		c.(*net.TCPConn).CloseWrite()
		var first [1]byte
		if _, err := io.ReadFull(c, first[:]); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		rest, err := io.ReadAll(c)
		sum := sha256.Sum256([]byte("x"))
		if err != nil || first[0] != sum[0] || string(rest) != string(sum[1:]) {
			t.Fatalf("answer %x %x, %v", first, rest, err)
		}
		t.Logf("first byte of the first connection after %v (symmetric × symmetric: relayed)", took.Round(time.Millisecond))
		if took > 300*time.Millisecond {
			t.Errorf("first byte after %v, want under 300 ms", took)
		}
		l.clients["vq"].interrupt(10 * time.Second)
		delete(l.clients, "vq")
	})

	// A 100 MB transfer started at the visitor's first connect moves to the
	// direct path while it runs: most of its bytes do not cross the server.
	l.startClient(t, "vb", visitorConfig("oa", "10s")) // for both subtests: its link makes it through both
	t.Run("live upgrade", func(t *testing.T) {
		const size = 100 << 20
		before := counter.bytes(t)
		start := time.Now()
		if err := xtcpTransfer(l.hosts["vb"], size, 11); err != nil {
			t.Fatal(err)
		}
		through := counter.bytes(t) - before
		t.Logf("100 MB in %v; %.1f MB crossed the server (%.0f%%: each relayed byte crosses it twice)",
			time.Since(start).Round(time.Millisecond), float64(through)/1e6, 100*float64(through)/(2*size))
		if through > size { // half of the bytes, counted twice
			t.Errorf("%d bytes crossed the server: most of the transfer was relayed", through)
		}
		if n := l.clients["vb"].count("connections moved to the direct path"); n < 1 {
			t.Errorf("the visitor never said it moved to the direct path")
		}
	})

	// The direct paths (UDP, and TCP: both NATs keep ports) are
	// black-holed in the middle of a transfer: the transfer finishes
	// intact over the relay.
	t.Run("live downgrade", func(t *testing.T) {
		h := l.hosts["vb"]
		// The xudp link too: direct first.
		if err := xudpEcho(h, 5); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "the xudp link's direct path", func() bool {
			return l.clients["vb"].count(`msg="direct path established" client=vb visitor=to-oa-udp`) > 0
		})
		if err := xudpEcho(h, 20); err != nil {
			t.Fatal(err)
		}
		const size = 60 << 20
		before := counter.bytes(t)
		var sent atomic.Int64
		done := make(chan error, 1)
		go func() { done <- xtcpTransferCounted(h, size, 12, &sent) }()
		// Black-hole once a third is sent (over the direct path the
		// upgrade left).
		eventually(t, 60*time.Second, "a third of the transfer", func() bool { return sent.Load() >= size/3 })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Everything between the two NATs (the punched UDP and TCP paths)
		// is dropped; the relay, through hops, is not.
		for _, dir := range []string{"saddr", "daddr"} {
			if _, err := l.nats["natb"].Run(ctx, "nft", "insert", "rule", "ip", "netlab", "forward", "ip", dir, "198.51.100.21", "drop"); err != nil {
				t.Fatal(err)
			}
		}
		blackholed := time.Now()
		if err := <-done; err != nil {
			t.Fatalf("transfer across the black hole: %v", err)
		}
		through := counter.bytes(t) - before
		t.Logf("60 MB ended %v after the black hole; %.1f MB crossed the server", time.Since(blackholed).Round(time.Millisecond), float64(through)/1e6)
		if through < 20<<20 {
			t.Errorf("only %d bytes crossed the server after the direct path was black-holed", through)
		}
		if n := l.clients["vb"].count(`msg="connections moved to the relay: the direct path stopped answering" client=vb visitor=to-oa-tcp`); n < 1 {
			t.Errorf("the xtcp visitor never said it moved to the relay")
		}
		// Datagrams switch the same way.
		before = counter.bytes(t)
		if err := xudpEcho(h, 20); err != nil {
			t.Fatalf("xudp across the black hole: %v", err)
		}
		if n := l.clients["vb"].count(`msg="connections moved to the relay: the direct path stopped answering" client=vb visitor=to-oa-udp`); n < 1 {
			t.Errorf("the xudp visitor never said it moved to the relay")
		}
		if through := counter.bytes(t) - before; through < int64(20*2*len("datagram 10")) {
			t.Errorf("the datagrams did not cross the server after the black hole: %d bytes", through)
		}
	})

	// Both networks drop all UDP: xtcp goes direct over a punched TCP
	// path, and its bulk does not cross the server.
	t.Run("UDP blocked: direct over TCP", func(t *testing.T) {
		l.startClient(t, "ve", visitorConfig("od", "10s"))
		h := l.hosts["ve"]
		if err := xtcpTransfer(h, 1<<20, 21); err != nil { // makes the link; the punch runs beside it
			t.Fatal(err)
		}
		m := l.waitAttempt(t, 30*time.Second, "ve", "od", "xtcp")
		line := l.attemptLine("ve", "od", "xtcp")
		if m[6] != "direct" || !strings.Contains(line, "transport=tcp") {
			t.Fatalf("attempt: %s", line)
		}
		eventually(t, 10*time.Second, "the visitor's TCP path", func() bool {
			return l.clients["ve"].count(`msg="direct path established" client=ve visitor=to-od-tcp type=xtcp server_name=od-tcp transport=tcp`) > 0
		})
		before := counter.bytes(t)
		if err := xtcpTransfer(h, 10<<20, 22); err != nil {
			t.Fatal(err)
		}
		through := counter.bytes(t) - before
		t.Logf("10 MB over the punched TCP path; %d bytes crossed the server; attempt: %s", through, line)
		if through > 1<<20 {
			t.Errorf("%d bytes crossed the server: the bulk was relayed", through)
		}
		// Datagrams go over the TCP path too (the relay is a stream as
		// well, so nothing is lost by it), or the relay.
		if err := xudpEcho(h, 20); err != nil {
			t.Fatalf("xudp: %v", err)
		}
		// The tally counts the TCP path.
		if tcp := l.tally(t, "tcp"); tcp < 1 {
			t.Errorf("GET /api/p2p counts no TCP path: %s", l.api(t, "/api/p2p"))
		}
		t.Logf("GET /api/p2p?table=1:\n%s", l.api(t, "/api/p2p?table=1"))
	})
}

// xtcpTransferCounted is xtcpTransfer, counting the bytes sent in sent.
func xtcpTransferCounted(h *netlab.Host, size int64, seed uint64, sent *atomic.Int64) error {
	c, err := dialVisitor(h)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	sum := sha256.New()
	if err := pattern(io.MultiWriter(c, sum, counting{sent}), size, seed); err != nil {
		return err
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if string(got) != string(sum.Sum(nil)) {
		return errDigest
	}
	return nil
}

type counting struct{ n *atomic.Int64 }

func (c counting) Write(b []byte) (int, error) { c.n.Add(int64(len(b))); return len(b), nil }

// attemptLine is the server's log line of the visitor's first attempt of
// the given type towards owner ("" if none).
func (l *p2pLab) attemptLine(visitor, owner, typ string) string {
	for _, line := range strings.Split(l.srv.out.String(), "\n") {
		m := attemptRE.FindStringSubmatch(line)
		if m != nil && m[1] == typ && m[2] == visitor && m[3] == owner {
			return line
		}
	}
	return ""
}
