package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hopproxy/hop/tests/netlab"
)

// p2pLab is the NAT matrix: hops on a WAN with two addresses (so that RFC
// 5780 tests work), and clients behind NATs of different behaviour.
type p2pLab struct {
	lab     *netlab.Lab
	srv     *proc
	srvHost *netlab.Host
	hosts   map[string]*netlab.Host
	nats    map[string]*netlab.NAT
	clients map[string]*proc
	upnp    *netlab.Miniupnpd // on NAT U; nil without miniupnpd installed
}

// services of an owner: a digest service (tcp) and an echo (udp), inside
// its namespace.
func ownerServices(t *testing.T, h *netlab.Host) (tcpPort, udpPort int) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	err := h.Do(func() (err error) {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { digest(c); c.Close() }()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 65535)
		for {
			n, a, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], a)
		}
	}()
	t.Cleanup(func() { ln.Close(); pc.Close(); wg.Wait() })
	return ln.Addr().(*net.TCPAddr).Port, pc.LocalAddr().(*net.UDPAddr).Port
}

const p2pSecret = "matrix-secret-key"

func ownerConfig(id string, tcpPort, udpPort int) string {
	return fmt.Sprintf(`
[[proxies]]
name = "%[1]s-tcp"
type = "xtcp"
secretKey = %[4]q
localPort = %[2]d

[[proxies]]
name = "%[1]s-udp"
type = "xudp"
secretKey = %[4]q
localPort = %[3]d
`, id, tcpPort, udpPort, p2pSecret)
}

func visitorConfig(owner string, keepalive string) string {
	return fmt.Sprintf(`
[[visitors]]
name = "to-%[1]s-tcp"
type = "xtcp"
serverName = "%[1]s-tcp"
secretKey = %[2]q
bindPort = 9001
retryInterval = "60s"
keepaliveInterval = %[3]q

[[visitors]]
name = "to-%[1]s-udp"
type = "xudp"
serverName = "%[1]s-udp"
secretKey = %[2]q
bindPort = 9002
retryInterval = "60s"
keepaliveInterval = %[3]q
`, owner, p2pSecret, keepalive)
}

func (l *p2pLab) startClient(t testing.TB, name, body string) {
	t.Helper()
	cfg := fmt.Sprintf("serverAddr = \"198.51.100.10\"\nserverPort = 7000\nclientID = %q\nauth.token = \"e2e-secret\"\ngracePeriod = \"1s\"\n"+
		"[reconnect]\nminDelay = \"100ms\"\nmaxDelay = \"1s\"\n%s", name, body)
	logins := l.srv.count(`msg="client logged in" remote=`) // any client
	before := strings.Count(l.srv.out.String(), "client="+name+" session=")
	proxies := strings.Count(body, "[[proxies]]")
	registered := l.registered(name)
	l.clients[name] = startIn(t, l.hosts[name], "hopc", cfg)
	eventually(t, ready, name+" to log in and register its proxies", func() bool {
		return l.srv.count(`msg="client logged in" remote=`) > logins &&
			strings.Count(l.srv.out.String(), "client="+name+" session=") > before &&
			l.registered(name) >= registered+proxies
	})
}

// registered counts the server's lines of proxies of client name that
// registered (a visitor offering before its owner's proxies are there is
// refused, not attempted).
func (l *p2pLab) registered(name string) int {
	n := 0
	for _, line := range strings.Split(l.srv.out.String(), "\n") {
		if strings.Contains(line, " client="+name+" ") &&
			(strings.Contains(line, `msg="secret proxy registered`) || strings.Contains(line, `msg="proxy started"`)) {
			n++
		}
	}
	return n
}

// natSpec is one NAT of a P2P lab and the hosts behind it.
type natSpec struct {
	name, wanIP, lan string
	cfg              netlab.NATConfig
	hosts            []string
}

// matrixNATs are the NATs of the matrix.
var matrixNATs = []natSpec{
	{"nata", "198.51.100.21", "10.1.0", netlab.NATConfig{Mode: netlab.PortPreserving}, []string{"oa", "va"}},
	{"natb", "198.51.100.22", "10.2.0", netlab.NATConfig{Mode: netlab.PortPreserving}, []string{"vb"}},
	{"natr", "198.51.100.23", "10.3.0", netlab.NATConfig{Mode: netlab.RandomPort}, []string{"or"}},
	{"natq", "198.51.100.24", "10.4.0", netlab.NATConfig{Mode: netlab.RandomPort}, []string{"vq"}},
	{"nats", "198.51.100.25", "10.5.0", netlab.NATConfig{Mode: netlab.PortPreserving, UDPTimeout: 3 * time.Second}, []string{"vs"}},
	// Random ports like NAT R, and its gateway runs miniupnpd (UPnP IGD,
	// NAT-PMP and PCP).
	{"natu", "198.51.100.26", "10.6.0", netlab.NATConfig{Mode: netlab.RandomPort}, []string{"ou"}},
}

func newP2PLab(t *testing.T) *p2pLab { return newP2PLabWith(t, matrixNATs) }

// newP2PLabWith builds a lab of the given NATs (NAT "natu" gets
// miniupnpd, and is left out when it is not installed) with hops on the
// WAN.
func newP2PLabWith(t *testing.T, nats []natSpec) *p2pLab {
	lab := netlab.New(t)
	l := &p2pLab{lab: lab, hosts: map[string]*netlab.Host{}, nats: map[string]*netlab.NAT{}, clients: map[string]*proc{}}
	wan := lab.Network("wan", "198.51.100.0/24")
	l.srvHost = lab.Host("srv")
	l.srvHost.Attach(wan, "198.51.100.10")
	l.srvHost.Attach(wan, "198.51.100.11")
	_, noUPnP := netlab.MiniupnpdPath()
	for _, n := range nats {
		if n.name == "natu" && noUPnP != nil {
			continue
		}
		lan := lab.Network("l"+n.name, n.lan+".0/24")
		l.nats[n.name] = lab.NAT(n.name, wan, n.wanIP, lan, n.lan+".1", n.cfg)
		for i, h := range n.hosts {
			host := lab.Host(h)
			host.Attach(lan, fmt.Sprintf("%s.%d", n.lan, 10+i))
			host.DefaultRoute(n.lan + ".1")
			l.hosts[h] = host
		}
		if n.name == "natu" {
			l.upnp = l.nats[n.name].Miniupnpd(netlab.MiniupnpdConfig{})
		}
	}
	srvCfg := "bindAddr = \"198.51.100.10\"\nbindPort = 7000\nauth.token = \"e2e-secret\"\ngracePeriod = \"1s\"\n" +
		"[p2p]\nstunAltPort = 7001\nstunAltAddr = \"198.51.100.11\"\n[webServer]\naddr = \"127.0.0.1\"\nport = 7500\n"
	l.srv = startIn(t, l.srvHost, "hops", srvCfg)
	eventually(t, ready, "hops to listen", func() bool { return l.srv.count("msg=listening") == 1 })
	return l
}

// cellResult is one row of the printed matrix.
type cellResult struct {
	visitor, owner, pair string
	outcome              string
	timeToPath           string
}

var attemptRE = regexp.MustCompile(`msg="P2P attempt".* type=(\w+) visitor=(\S+) owner=(\S+) visitor_nat=(\S+) owner_nat=(\S+) outcome=(\w+) elapsed=(\S+)`)

// attempt returns the server's record of the visitor's first attempt of
// the given type towards owner.
func (l *p2pLab) attempt(visitor, owner, typ string) []string {
	for _, line := range strings.Split(l.srv.out.String(), "\n") {
		m := attemptRE.FindStringSubmatch(line)
		if m != nil && m[1] == typ && m[2] == visitor && m[3] == owner {
			return m
		}
	}
	return nil
}

// hopcNAT runs `hopc nat` on host and checks its output has every want.
func (l *p2pLab) hopcNAT(t *testing.T, host string, want ...string) string {
	t.Helper()
	path := writeConfig(t, "hopc", "serverAddr = \"198.51.100.10\"\nserverPort = 7000\nauth.token = \"e2e-secret\"\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := l.hosts[host].Run(ctx, filepath.Join(binDir, "hopc"), "nat", "-c", path)
	if err != nil {
		t.Fatalf("hopc nat on %s: %v\n%s", host, err, out)
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Errorf("hopc nat on %s lacks %q:\n%s", host, w, out)
		}
	}
	t.Logf("hopc nat on %s:\n%s", host, out)
	return string(out)
}

// startVisitor starts the visitor hopc name with config body and waits
// until its xtcp port (9001) accepts connections. It returns its host.
func (l *p2pLab) startVisitor(t testing.TB, name, body string) *netlab.Host {
	t.Helper()
	l.startClient(t, name, body)
	h := l.hosts[name]
	eventually(t, ready, "the visitor port", func() bool {
		return h.Do(func() error {
			c, err := net.DialTimeout("tcp", "127.0.0.1:9001", time.Second)
			if err == nil {
				c.Close()
			}
			return err
		}) == nil
	})
	return h
}

// waitAttempt waits up to d for the server's record of the visitor's
// first attempt of type typ towards owner, and returns it (as attempt).
func (l *p2pLab) waitAttempt(t testing.TB, d time.Duration, visitor, owner, typ string) []string {
	t.Helper()
	var m []string
	eventually(t, d, "the server's record of the "+typ+" attempt", func() bool {
		m = l.attempt(visitor, owner, typ)
		return m != nil
	})
	return m
}

var pathRE = regexp.MustCompile(` path=(\w+)`)

// attemptPath returns the candidate kind (path=) of the server's record of
// the visitor's first attempt of the given type towards owner.
func (l *p2pLab) attemptPath(visitor, owner, typ string) string {
	for _, line := range strings.Split(l.srv.out.String(), "\n") {
		m := attemptRE.FindStringSubmatch(line)
		if m != nil && m[1] == typ && m[2] == visitor && m[3] == owner {
			if p := pathRE.FindStringSubmatch(line); p != nil {
				return p[1]
			}
			return ""
		}
	}
	return ""
}

// xtcpTransfer moves size bytes through the visitor's xtcp port and checks
// the digest the owner's service answers.
func xtcpTransfer(h *netlab.Host, size int64, seed uint64) error {
	var c net.Conn
	if err := h.Do(func() (err error) { c, err = net.DialTimeout("tcp", "127.0.0.1:9001", 5*time.Second); return }); err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	sum := sha256.New()
	if err := pattern(io.MultiWriter(c, sum), size, seed); err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("reading digest: %w", err)
	}
	if !bytes.Equal(got, sum.Sum(nil)) {
		return fmt.Errorf("digest mismatch after %d bytes", size)
	}
	return nil
}

// xudpEcho sends n datagrams through the visitor's xudp port and waits for
// their echoes (a datagram lost on the way is sent again, up to a bound).
func xudpEcho(h *netlab.Host, n int) error {
	var c net.Conn
	if err := h.Do(func() (err error) { c, err = net.Dial("udp", "127.0.0.1:9002"); return }); err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 2048)
	for i := range n {
		msg := []byte(fmt.Sprintf("datagram %d", i))
		ok := false
		for try := 0; try < 20 && !ok; try++ {
			c.Write(msg)
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			k, err := c.Read(buf)
			ok = err == nil && bytes.Equal(buf[:k], msg)
		}
		if !ok {
			return fmt.Errorf("no echo of datagram %d", i)
		}
	}
	return nil
}

// TestP2PMatrix checks every pair of NAT behaviours for the outcome it
// allows, moving 10 MB through xtcp and echoing datagrams through xudp in
// each cell, and prints the matrix.
func TestP2PMatrix(t *testing.T) {
	l := newP2PLab(t)
	owners := []string{"oa", "or"}
	if l.upnp != nil {
		owners = append(owners, "ou")
	}
	for _, owner := range owners {
		tcpPort, udpPort := ownerServices(t, l.hosts[owner])
		l.startClient(t, owner, ownerConfig(owner, tcpPort, udpPort))
	}
	// hopc nat explains each NAT from its side, through hops only.
	t.Run("hopc nat", func(t *testing.T) {
		for host, want := range map[string][]string{
			"oa": {"mapping:            endpoint-independent", "port preserved:     yes", "class:              EIM/APDF"},
			"vq": {"mapping:            address-and-port-dependent", "port preserved:     no", "class:              APDM/APDF", "look random",
				"No gateway answers port-mapping requests"},
			"ou": {"class:              APDM/APDF", "port mapping (gateway 10.6.0.1)", "PCP:              yes", "NAT-PMP:          yes",
				"UPnP IGD:         yes (WANIPConnection:", "external address: 11.45.67.1 (hops sees 198.51.100.26",
				"also offered at:  198.51.100.26:", "test mapping deleted: yes"},
		} {
			if host == "ou" && l.upnp == nil {
				continue
			}
			l.hopcNAT(t, host, want...)
		}
	})

	cells := []struct {
		visitor, owner string
		want           string // outcome of the attempt: lan, direct or failed (relay)
		path           string // the kind of candidate the path must run to; "" any
	}{
		{"va", "oa", "lan", ""},          // both behind NAT A
		{"vb", "oa", "direct", ""},       // port-preserving both sides
		{"vq", "or", "failed", ""},       // random ports on both sides: relay
		{"vb", "ou", "direct", "mapped"}, // the owner's gateway maps a port: no birthday punch needed
		{"vq", "ou", "direct", "mapped"}, // random ports on both sides, but the owner's gateway maps a port on request
		{"vq", "oa", "direct", ""},       // random visitor, port-preserving owner
		{"vb", "or", "direct", ""},       // port-preserving visitor, random owner
	}
	var results []cellResult
	for _, cell := range cells {
		name := cell.visitor + "->" + cell.owner
		ok := t.Run(name, func(t *testing.T) {
			if l.clients[cell.owner] == nil {
				netlab.RequireMiniupnpd(t)
			}
			if p := l.clients[cell.visitor]; p != nil {
				p.interrupt(10 * time.Second)
				delete(l.clients, cell.visitor)
			}
			h := l.startVisitor(t, cell.visitor, visitorConfig(cell.owner, "10s"))
			// The first connection may be relayed while the punch runs;
			// either way its bytes must arrive intact.
			if err := xtcpTransfer(h, 10<<20, 1); err != nil {
				t.Fatalf("xtcp: %v", err)
			}
			m := l.waitAttempt(t, 20*time.Second, cell.visitor, cell.owner, "xtcp")
			if err := xtcpTransfer(h, 10<<20, 2); err != nil { // over the path the attempt found
				t.Fatalf("xtcp after the attempt: %v", err)
			}
			if err := xudpEcho(h, 20); err != nil {
				t.Fatalf("xudp: %v", err)
			}
			mu := l.waitAttempt(t, 20*time.Second, cell.visitor, cell.owner, "xudp")
			res := cellResult{visitor: cell.visitor, owner: cell.owner, pair: m[4] + " → " + m[5], outcome: m[6], timeToPath: m[7]}
			if res.outcome == "failed" {
				res.outcome, res.timeToPath = "relay", "-"
			}
			xudp := mu[6]
			if xudp == "failed" {
				xudp = "relay"
			}
			if p := l.attemptPath(cell.visitor, cell.owner, "xtcp"); p != "" {
				res.outcome += " via " + p
			}
			if p := l.attemptPath(cell.visitor, cell.owner, "xudp"); p != "" {
				xudp += " via " + p
			}
			res.outcome += " (xudp " + xudp + ")"
			results = append(results, res)
			if m[6] != cell.want || mu[6] != cell.want {
				t.Errorf("outcome xtcp %s, xudp %s; want %s for %s", m[6], mu[6], cell.want, m[4]+" → "+m[5])
			}
			if cell.path != "" {
				for _, typ := range []string{"xtcp", "xudp"} {
					if p := l.attemptPath(cell.visitor, cell.owner, typ); p != cell.path {
						t.Errorf("%s path to a %q candidate, want %q", typ, p, cell.path)
					}
				}
			}
			// A gateway that answers nothing is said once, not per attempt.
			if n := l.clients[cell.visitor].count(`msg="no port-mapping gateway`); n > 1 {
				t.Errorf("the visitor logged %d times that no gateway answered", n)
			}
			if cell.owner == "ou" && cell.visitor == "vq" { // the last cell of ou
				// The owner's paths hold mappings on its gateway; at exit
				// hopc deletes them.
				if rules, err := l.upnp.Rules(); err != nil || !strings.Contains(rules, " dport ") {
					t.Errorf("no mapping on NAT U while the paths are up: %v\n%s", err, rules)
				}
				l.clients["ou"].interrupt(10 * time.Second)
				delete(l.clients, "ou")
				var rules string
				eventually(t, 10*time.Second, "hopc to delete its mappings at exit", func() bool {
					r, err := l.upnp.Rules()
					rules = r
					return err == nil && !strings.Contains(r, " dport ")
				})
				t.Logf("NAT U's miniupnpd rules after the owner exited:\n%s", rules)
			}
		})
		if !ok && len(results) == 0 {
			break
		}
	}
	// A direct path left idle for several of NAT S's 3 s UDP timeouts still
	// carries data without a new punch: the path keepalive (1 s) holds the
	// mapping open.
	t.Run("idle path survives NAT UDP timeout", func(t *testing.T) {
		h := l.startVisitor(t, "vs", visitorConfig("oa", "1s"))
		if err := xtcpTransfer(h, 1<<20, 3); err != nil {
			t.Fatal(err)
		}
		m := l.waitAttempt(t, 20*time.Second, "vs", "oa", "xtcp")
		if m[6] != "direct" {
			t.Fatalf("outcome %s, want direct", m[6])
		}
		// Four NAT UDP timeouts of idleness, the thing under test. The
		// mapping of the path in NAT S must exist all along: the path
		// keepalive, not a new punch, keeps it.
		flow := "src=10.5.0.10 dst=198.51.100.21 "
		idleUntil := time.Now().Add(4 * 3 * time.Second)
		for time.Now().Before(idleUntil) {
			entries, err := l.nats["nats"].Conntrack(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, e := range entries {
				found = found || (strings.Contains(e, " udp ") && strings.Contains(e, flow))
			}
			if !found {
				t.Fatalf("NAT S forgot the path's mapping while idle:\n%s", strings.Join(entries, "\n"))
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err := xtcpTransfer(h, 1<<20, 4); err != nil {
			t.Fatalf("after idling: %v", err)
		}
		if n := countAttempts(l.srv.out.String(), "vs", "xtcp"); n != 1 {
			t.Fatalf("%d xtcp attempts by vs: the idle path was re-punched", n)
		}
		if k := l.clients["vs"].count("direct path lost"); k != 0 {
			t.Fatalf("the direct path died while idle:\n%s", l.clients["vs"].out.String())
		}

		// The owner restarts: the path dies, the visitor says so and
		// punches again for its next connection.
		l.clients["oa"].interrupt(10 * time.Second)
		tcpPort, udpPort := ownerServices(t, l.hosts["oa"])
		l.startClient(t, "oa", ownerConfig("oa", tcpPort, udpPort))
		eventually(t, 40*time.Second, "the visitor to notice the dead path", func() bool {
			return l.clients["vs"].count("direct path lost") > 0
		})
		if err := xtcpTransfer(h, 1<<20, 5); err != nil {
			t.Fatalf("after the owner restarted: %v", err)
		}
		eventually(t, 20*time.Second, "a second attempt", func() bool { return countAttempts(l.srv.out.String(), "vs", "xtcp") == 2 })
	})

	// The tally is served by the web API.
	t.Run("tally API", func(t *testing.T) {
		body := l.api(t, "/api/p2p?table=1")
		if !strings.Contains(body, "visitor NAT") || !strings.Contains(body, "EIM/APDF") {
			t.Fatalf("tally table:\n%s", body)
		}
		t.Logf("GET /api/p2p?table=1:\n%s", body)
		if l.upnp != nil { // the port-mapped paths are counted
			if mapped := l.tally(t, "mapped"); mapped < 2 {
				t.Errorf("the tally counts %d port-mapped paths, want at least 2 (vb->ou, vq->ou)", mapped)
			}
		}
	})

	var b strings.Builder
	fmt.Fprintf(&b, "\nP2P matrix (visitor → owner):\n%-10s %-22s %-50s %s\n", "cell", "NATs", "outcome", "time to path")
	for _, r := range results {
		fmt.Fprintf(&b, "%-10s %-22s %-50s %s\n", r.visitor+"->"+r.owner, r.pair, r.outcome, r.timeToPath)
	}
	t.Log(b.String())
	// go test shows a passing package's output only with -v: CI names a
	// file to print the matrix from.
	if path := os.Getenv("HOP_P2P_MATRIX_FILE"); path != "" {
		if err := appendFile(path, b.String()); err != nil {
			t.Errorf("writing the matrix: %v", err)
		}
	}
}

// countAttempts counts the server's records of the visitor's attempts.
func countAttempts(log, visitor, typ string) int {
	n := 0
	for _, line := range strings.Split(log, "\n") {
		if m := attemptRE.FindStringSubmatch(line); m != nil && m[1] == typ && m[2] == visitor {
			n++
		}
	}
	return n
}

// tally returns the sum over the rows of GET /api/p2p of the count
// named key (a JSON field of each row).
func (l *p2pLab) tally(t *testing.T, key string) int {
	t.Helper()
	body := l.api(t, "/api/p2p")
	var rows []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &rows); err != nil {
		t.Fatalf("GET /api/p2p: %v\n%s", err, body)
	}
	sum := 0
	for _, r := range rows {
		var n int
		if err := json.Unmarshal(r[key], &n); err != nil {
			t.Fatalf("GET /api/p2p: %q of a row: %v\n%s", key, err, body)
		}
		sum += n
	}
	return sum
}

// api GETs path from the server's web API, dialled inside its namespace
// (http.Client would dial on another thread, outside it).
func (l *p2pLab) api(t *testing.T, path string) string {
	t.Helper()
	var c net.Conn
	if err := l.srvHost.Do(func() (err error) { c, err = net.Dial("tcp", "127.0.0.1:7500"); return }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: hops\r\nConnection: close\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %s, %v", path, resp.Status, err)
	}
	return string(body)
}
