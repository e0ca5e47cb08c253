// Package autokeepalive runs heartbeat.interval = "auto" behind real
// kernel NATs (package netlab: network namespaces, nftables, conntrack)
// whose TCP established timeouts differ, and checks what it learns, that
// it loses no session, and how many packets it costs. It is a package of
// its own so that its minutes of deliberate silence run beside tests/e2e.
package autokeepalive

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hopproxy/hop/tests/binaries"
	"github.com/hopproxy/hop/tests/netlab"
)

var binDir string

func TestMain(m *testing.M) {
	os.Exit(binaries.Main(m, &binDir))
}

// cell is one client network behind a NAT with its own TCP timeout.
type cell struct {
	name    string
	timeout time.Duration // nf_conntrack_tcp_timeout_established; 0: the kernel's (5 days)
	net     string        // the LAN's first three octets
	port    int           // the proxy's public port on hops

	nat  *netlab.NAT
	cli  *netlab.Host
	hopc *netlab.Proc
	echo int // the echo service's port in cli's namespace

	// Found by the run.
	first   string        // the third cell: what hopc learnt before its NAT got shorter
	lost    int           // the third cell: sessions lost after that
	learned string        // hopc's line about what it learnt
	packets int64         // control packets through the NAT over the quiet minute
	quiet   time.Duration // how long that minute really was
}

// The control port and the bounds of "auto" in the lab: maxInterval 20s
// bounds how long the search probes (to 20s/0.45 ≈ 44s), so the lab
// ends in minutes; the 40 s NAT is still learnt.
const (
	ctlPort     = 7000
	maxInterval = "20s"
)

// count returns how often s occurs in p's output.
func count(p *netlab.Proc, s string) int { return strings.Count(string(p.Output()), s) }

func lineOf(p *netlab.Proc, s string) string {
	for _, l := range strings.Split(string(p.Output()), "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// waitFor polls cond every 100 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cond()
}

var packetsRE = regexp.MustCompile(`packets (\d+)`)

// relearnedRE is hopc's line about a timeout near 5 s.
var relearnedRE = regexp.MustCompile(`heartbeat interval learned: path forgets idle TCP after ~[3-7]s`)

// ctlPackets reads the packets of hop's control port the NAT forwarded
// (or dropped), both ways.
func (c *cell) ctlPackets() (int64, error) {
	out, err := c.nat.Run(context.Background(), "nft", "list", "counter", "inet", "hopcount", "ctl")
	if err != nil {
		return 0, err
	}
	m := packetsRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no packet count in %q", out)
	}
	return strconv.ParseInt(string(m[1]), 10, 64)
}

// dialPublic connects to the cell's proxy on hops, as an internet user on
// the server's host.
func dialPublic(srv *netlab.Host, port int) (net.Conn, error) {
	var c net.Conn
	err := srv.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 2*time.Second)
		return
	})
	return c, err
}

func echoOn(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

func echo(srv *netlab.Host, port int, msg string) error {
	c, err := dialPublic(srv, port)
	if err != nil {
		return err
	}
	defer c.Close()
	return echoOn(c, msg)
}

func writeConfig(t *testing.T, name, cfg string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name+".toml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAutoHeartbeatBehindNATs: three hopc behind NATs that forget idle
// TCP flows after 5 s, after 40 s, and only after the kernel's 5 days,
// all with heartbeat.interval = "auto", to one hops.
//   - Each learns its path without losing a session, and an idle user
//     connection survives a quiet minute behind the 5 s and 40 s NATs.
//   - Over that minute, the control packets through the 40 s NAT are at
//     most 40 % of those through the 5 s NAT.
//   - The third NAT's timeout is then lowered to 5 s: hopc loses at most
//     one session, learns the new timeout, and stays up.
func TestAutoHeartbeatBehindNATs(t *testing.T) {
	lab := netlab.New(t)
	wan := lab.Network("wan", "198.51.100.0/24")
	srv := lab.Host("srv")
	srv.Attach(wan, "198.51.100.10")
	cells := []*cell{
		{name: "a", timeout: 5 * time.Second, net: "10.81.0", port: 6001},
		{name: "b", timeout: 40 * time.Second, net: "10.82.0", port: 6002},
		{name: "c", net: "10.83.0", port: 6003},
	}
	for i, c := range cells {
		lan := lab.Network("lan"+c.name, c.net+".0/24")
		c.nat = lab.NAT("nat"+c.name, wan, "198.51.100."+strconv.Itoa(21+i), lan, c.net+".1", netlab.NATConfig{
			Mode: netlab.PortPreserving, TCPEstablishedTimeout: c.timeout, TCPLoose: false, DropInvalid: true,
		})
		c.cli = lab.Host("cli" + c.name)
		c.cli.Attach(lan, c.net+".10")
		c.cli.DefaultRoute(c.net + ".1")
		// Count the control connection's packets (and the probes') in
		// the NAT, before its own filter decides on them.
		rules := fmt.Sprintf("table inet hopcount {\n\tcounter ctl { }\n\tchain forwarded {\n\t\ttype filter hook forward priority -10; policy accept;\n"+
			"\t\ttcp dport %d counter name \"ctl\"\n\t\ttcp sport %d counter name \"ctl\"\n\t}\n}\n", ctlPort, ctlPort)
		path := filepath.Join(t.TempDir(), "count.nft")
		if err := os.WriteFile(path, []byte(rules), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := c.nat.Run(context.Background(), "nft", "-f", path); err != nil {
			t.Fatalf("nft in %s: %v: %s", c.nat.Name(), err, out)
		}
		// The private service: an echo server in the client's namespace.
		var ln net.Listener
		if err := c.cli.Do(func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:0"); return }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(conn, conn); conn.Close() }()
			}
		}()
		c.echo = ln.Addr().(*net.TCPAddr).Port
	}

	hops, err := srv.Start(context.Background(), filepath.Join(binDir, "hops"), "-c", writeConfig(t, "hops",
		fmt.Sprintf("bindPort = %d\nauth.token = \"lab-secret\"\ngracePeriod = \"1s\"\np2p.stunAltPort = 0\n", ctlPort)))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cells {
		cfg := fmt.Sprintf("serverAddr = \"198.51.100.10\"\nserverPort = %d\nauth.token = \"lab-secret\"\ngracePeriod = \"1s\"\nclientID = %q\n"+
			"[reconnect]\nminDelay = \"100ms\"\nmaxDelay = \"1s\"\n[heartbeat]\ninterval = \"auto\"\nmaxInterval = %q\n"+
			"[[proxies]]\nname = \"echo-%s\"\ntype = \"tcp\"\nlocalPort = %d\nremotePort = %d\n", ctlPort, c.name, maxInterval, c.name, c.echo, c.port)
		if c.hopc, err = c.cli.Start(context.Background(), filepath.Join(binDir, "hopc"), "-c", writeConfig(t, "hopc-"+c.name, cfg)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("hops:\n%s", hops.Output())
			for _, c := range cells {
				t.Logf("hopc %s:\n%s", c.name, c.hopc.Output())
			}
		}
	})
	for _, c := range cells {
		if !waitFor(30*time.Second, func() bool { return echo(srv, c.port, "hello") == nil }) {
			t.Fatalf("cell %s: no echo through the tunnel", c.name)
		}
	}

	var wg sync.WaitGroup
	for _, c := range cells {
		wg.Go(func() {
			// Learning: the 40 s NAT needs probes of up to ~44 s, twice
			// for a confirmed failure, and a few rounds.
			if !waitFor(6*time.Minute, func() bool { return count(c.hopc, "heartbeat interval learned") >= 1 }) {
				t.Errorf("cell %s: hopc learnt nothing in 6 minutes", c.name)
				return
			}
			c.learned = lineOf(c.hopc, "heartbeat interval learned")
			if n := count(c.hopc, `msg="connection lost"`); n != 0 {
				t.Errorf("cell %s: %d sessions lost while learning", c.name, n)
			}
			checkLearned(t, c)
			if c.timeout == 0 {
				lower(t, srv, c)
				return
			}
			quietMinute(t, srv, c)
		})
	}
	wg.Wait()
	a, b := cells[0], cells[1]
	if t.Failed() {
		return
	}
	for _, c := range cells[:2] {
		t.Logf("cell %s (NAT TCP timeout %v): %s; %d control packets in a quiet %v", c.name, c.timeout, c.learned, c.packets, c.quiet.Round(time.Second))
	}
	c := cells[2]
	t.Logf("cell %s (NAT TCP timeout the kernel's, then 5s): %s; after the cut, %d session(s) lost, then %s", c.name, c.first, c.lost, c.learned)
	if a.packets == 0 || b.packets*10 > a.packets*4 {
		t.Errorf("control packets over a quiet minute: %d behind the 40 s NAT, %d behind the 5 s NAT; want at most 40 %%", b.packets, a.packets)
	}
}

var learnedRE = regexp.MustCompile(`survived=(\S+) failed=(\S+)`)

// checkLearned checks what c's hopc learnt against its NAT: the longest
// silence that survived is shorter than the NAT's timeout, and the
// shortest that failed is not (within the search's 25 %); behind the
// kernel's default nothing up to the search's cap failed.
func checkLearned(t *testing.T, c *cell) {
	m := learnedRE.FindStringSubmatch(c.learned)
	if m == nil {
		t.Errorf("cell %s: no survived=/failed= in %q", c.name, c.learned)
		return
	}
	survived, err1 := time.ParseDuration(m[1])
	failed, err2 := time.ParseDuration(m[2])
	if err1 != nil || err2 != nil {
		t.Errorf("cell %s: %q: %v %v", c.name, c.learned, err1, err2)
		return
	}
	if c.timeout == 0 {
		if failed != 0 {
			t.Errorf("cell %s: a silence of %v failed behind a NAT with no short timeout", c.name, failed)
		}
		return
	}
	if survived >= c.timeout || failed < c.timeout || failed > c.timeout*3/2 {
		t.Errorf("cell %s: learnt survived %v, failed %v behind a NAT that forgets idle TCP after %v", c.name, survived, failed, c.timeout)
	}
}

// quietMinute holds a user connection idle through c's tunnel for a
// minute, counts the control packets through the NAT meanwhile, and
// checks the connection and the session survived.
func quietMinute(t *testing.T, srv *netlab.Host, c *cell) {
	conn, err := dialPublic(srv, c.port)
	if err != nil {
		t.Errorf("cell %s: %v", c.name, err)
		return
	}
	defer conn.Close()
	if err := echoOn(conn, "before"); err != nil {
		t.Errorf("cell %s: %v", c.name, err)
		return
	}
	p0, err := c.ctlPackets()
	if err != nil {
		t.Errorf("cell %s: %v", c.name, err)
		return
	}
	start := time.Now()
	time.Sleep(time.Minute) // the silence under test, not a wait for readiness
	p1, err := c.ctlPackets()
	if err != nil {
		t.Errorf("cell %s: %v", c.name, err)
		return
	}
	c.packets, c.quiet = p1-p0, time.Since(start)
	if err := echoOn(conn, "after a quiet minute"); err != nil {
		t.Errorf("cell %s: the user connection idle for a minute died: %v", c.name, err)
	}
	if n := count(c.hopc, `msg="connection lost"`); n != 0 {
		t.Errorf("cell %s: %d sessions lost (want none):\n%s", c.name, n, lineOf(c.hopc, `msg="connection lost"`))
	}
}

// lower cuts c's NAT's TCP timeout to 5 s under a hopc that learnt a
// long one: hopc may lose one session, must learn the new timeout, and
// stays up after.
func lower(t *testing.T, srv *netlab.Host, c *cell) {
	if out, err := c.nat.Run(context.Background(), "sysctl", "-w", "net.netfilter.nf_conntrack_tcp_timeout_established=5"); err != nil {
		t.Errorf("cell %s: %v: %s", c.name, err, out)
		return
	}
	c.first, c.timeout = c.learned, 5*time.Second
	relearned := func() bool { return relearnedRE.Match(c.hopc.Output()) }
	if !waitFor(4*time.Minute, relearned) {
		t.Errorf("cell %s: hopc did not learn the lowered timeout", c.name)
		return
	}
	lost := count(c.hopc, `msg="connection lost"`)
	c.lost = lost
	if lost > 1 {
		t.Errorf("cell %s: %d sessions lost after the NAT's timeout was lowered, want at most 1", c.name, lost)
	}
	c.learned = string(relearnedRE.Find(c.hopc.Output()))
	// Up after: 30 s (6 of the new timeouts) without another loss, and
	// the tunnel works.
	time.Sleep(30 * time.Second) // the silence under test
	if n := count(c.hopc, `msg="connection lost"`); n != lost {
		t.Errorf("cell %s: another session lost after re-learning", c.name)
	}
	if !waitFor(10*time.Second, func() bool { return echo(srv, c.port, "after") == nil }) {
		t.Errorf("cell %s: no echo after re-learning", c.name)
	}
}
