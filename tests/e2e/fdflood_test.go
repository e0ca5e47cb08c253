package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fdLimit is the RLIMIT_NOFILE (soft and hard) of a flooded hops: low
// enough for a few hundred connections to exhaust it, high enough for
// the race runtime, the listeners and a client with a proxy.
const fdLimit = 64

// floodConns is how many plain TCP connections a flood opens: several
// times fdLimit, so that hops runs out of descriptors whatever it holds.
const floodConns = 300

// The line hops logs when accept fails for lack of descriptors.
const fdExhaustedLine = "out of file descriptors"

// startLimited runs bin like start, under a shell that first sets both
// the soft and the hard RLIMIT_NOFILE to nofile, so that hops cannot raise
// it again.
func startLimited(t *testing.T, bin, cfg string, nofile int) *proc {
	t.Helper()
	script := fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile)
	cmd := exec.Command("/bin/sh", "-c", script, filepath.Join(binDir, bin), "-c", writeConfig(t, bin, cfg))
	return launch(t, bin, cmd, func(c *exec.Cmd) (func() error, error) {
		if err := c.Start(); err != nil {
			return nil, err
		}
		return c.Wait, nil
	})
}

// openFDs counts the process's open file descriptors, -1 once it is gone.
func (p *proc) openFDs() int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// flood opens n plain TCP connections to addr that send nothing. The
// kernel completes them from the listen backlog whether or not the
// process accepts them; a refused one (the port was closed: the process
// died) ends the flood early.
func flood(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Logf("flood connection %d of %d to %s: %v", len(conns)+1, n, addr, err)
			break
		}
		conns = append(conns, c)
	}
	return conns
}

// exhaust floods addr with connections that send nothing and waits until
// p holds every descriptor its limit allows (or exits). The caller closes
// the flood with closeAll.
func exhaust(t *testing.T, p *proc, addr string) []net.Conn {
	t.Helper()
	conns := flood(t, addr, floodConns)
	eventually(t, ready, p.name+" to run out of file descriptors", func() bool {
		return !p.running() || p.openFDs() >= fdLimit
	})
	t.Logf("%d connections to %s: %s holds %d descriptors of %d", len(conns), addr, p.name, p.openFDs(), fdLimit)
	return conns
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// checkFDLog checks that p said, rate-limited, what happened and what to
// do about it.
func checkFDLog(t *testing.T, p *proc, floodStart time.Time) {
	t.Helper()
	eventually(t, ready, p.name+" to log that it ran out of file descriptors", func() bool {
		return p.count(fdExhaustedLine) > 0
	})
	out := p.out.String()
	for _, want := range []string{"ulimit -n", "errors="} {
		if !strings.Contains(out, want) {
			t.Errorf("%s's log has no %q:\n%s", p.name, want, out)
		}
	}
	// At most one line per 5 s per listener, plus the first.
	if n, limit := p.count(fdExhaustedLine), 2+int(time.Since(floodStart)/(5*time.Second)); n > limit {
		t.Errorf("%s logged %d lines about file descriptors in %v; want at most %d", p.name, n, time.Since(floodStart), limit)
	}
	t.Logf("%s logged %d line(s) about the exhaustion", p.name, p.count(fdExhaustedLine))
}

// TestFDFloodControlPort: plain TCP connections to the control port, more
// than hops has descriptors, neither end hops nor keep it from accepting
// clients once they are gone.
func TestFDFloodControlPort(t *testing.T) {
	srvPort := freePort(t)
	// From one address, the handshake gate (limits.maxHandshakesPerIP)
	// closes the flood before it costs descriptors; a flood from many
	// addresses gets past it, so lift the gate to reach the accept loop.
	srv := startLimited(t, "hops", serverConfig(srvPort, "[limits]\nmaxHandshakes = 100000\nmaxHandshakesPerIP = 100000"), fdLimit)
	waitListening(t, loop(srvPort), ready)
	t.Logf("hops idle: %d descriptors open", srv.openFDs())

	began := time.Now()
	idle := exhaust(t, srv, loop(srvPort))
	// While hops is out of descriptors, junk connections queue in the
	// backlog; it accepts them once the idle ones are gone, and each
	// fails its TLS handshake.
	junk := flood(t, loop(srvPort), floodConns)
	for _, c := range junk {
		c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	}
	closeAll(idle)
	eventually(t, ready, "hops to log that it ran out of file descriptors, or exit", func() bool {
		return !srv.running() || srv.count(fdExhaustedLine) > 0
	})
	if !srv.running() {
		t.Fatalf("hops exited (code %d) after %d plain TCP connections to its control port", srv.waitExit(time.Second), floodConns)
	}
	checkFDLog(t, srv, began)
	eventually(t, ready, "hops to fail the handshakes of the junk connections", func() bool {
		return srv.count(`msg="TLS handshake failed`) > 0
	})
	closeAll(junk)

	echoPort := tcpService(t, echo)
	rPort := freePort(t)
	cli := start2(t, srvPort, tcpProxy("echo", echoPort, rPort))
	waitProxy(t, loop(rPort), ready)
	eventually(t, ready, "hopc to log in", func() bool { return cli.count("logged in") > 0 })
	if !srv.running() {
		t.Fatal("hops exited")
	}
	if want := fmt.Sprintf("soft=%d hard=%d", fdLimit, fdLimit); srv.count("file descriptor limit") == 0 || srv.count(want) == 0 {
		t.Errorf("hops did not log its file descriptor limit (%s)", want)
	}
	// The junk of each connection failed its TLS handshake: one line for
	// the source, a summary only after 10 s.
	if n := srv.count(`msg="TLS handshake failed`); n < 1 || n > 2 {
		t.Errorf("%d lines about failed TLS handshakes for %d junk connections from one address, want 1 (or 2 with the summary)", n, floodConns)
	} else {
		t.Logf("%d junk connections: %d line(s) about failed TLS handshakes", floodConns, n)
	}
	if code := cli.interrupt(10 * time.Second); code != 0 {
		t.Fatalf("hopc exit code %d after SIGINT", code)
	}
	if code := srv.interrupt(10 * time.Second); code != 0 {
		t.Fatalf("hops exit code %d after SIGINT", code)
	}
}

// TestFDFloodProxyPort: a flood of a tcp proxy's public port that exhausts
// hops' descriptors leaves the proxy accepting once the flood is gone
// (before, its accept loop ended silently and the port stayed bound with
// nobody accepting).
func TestFDFloodProxyPort(t *testing.T) {
	echoPort := tcpService(t, echo)
	rPort := freePort(t)
	srvPort := freePort(t)
	srv := startLimited(t, "hops", serverConfig(srvPort, ""), fdLimit)
	waitListening(t, loop(srvPort), ready)
	cli := start2(t, srvPort, tcpProxy("echo", echoPort, rPort))
	waitProxy(t, loop(rPort), ready)
	t.Logf("hops with a client and a proxy: %d descriptors open", srv.openFDs())

	began := time.Now()
	closeAll(exhaust(t, srv, loop(rPort)))
	if !srv.running() {
		t.Fatalf("hops exited (code %d) after a flood of its proxy port", srv.waitExit(time.Second))
	}
	waitProxy(t, loop(rPort), ready)
	checkFDLog(t, srv, began)

	// The control port still takes clients.
	rPort2 := freePort(t)
	cli2 := start(t, "hopc", clientConfig(srvPort, tcpProxy("echo2", echoPort, rPort2)))
	waitProxy(t, loop(rPort2), ready)
	for _, p := range []*proc{cli2, cli, srv} {
		if code := p.interrupt(10 * time.Second); code != 0 {
			t.Fatalf("%s exit code %d after SIGINT", p.name, code)
		}
	}
}

// start2 starts a hopc with the given proxies against srvPort.
func start2(t *testing.T, srvPort int, proxies string) *proc {
	t.Helper()
	return start(t, "hopc", clientConfig(srvPort, proxies))
}

// TestFDFloodVisitorPort: the same for a visitor's local port on hopc
// (its accept loop ended silently on EMFILE, the port stayed bound).
func TestFDFloodVisitorPort(t *testing.T) {
	srvPort := freePort(t)
	srv := start(t, "hops", serverConfig(srvPort, ""))
	waitListening(t, loop(srvPort), ready)
	owner := start(t, "hopc", withID(clientConfig(srvPort, stcpOwner(tcpService(t, echo), udpEcho(t), "s3cret-key", "")), "owner"))
	vt, vu := freePort(t), freePort(t)
	visitor := startLimited(t, "hopc", withID(clientConfig(srvPort, stcpVisitor(vt, vu, "s3cret-key")), "visitor"), fdLimit)
	waitProxy(t, loop(vt), ready)
	t.Logf("hopc with a visitor: %d descriptors open", visitor.openFDs())

	began := time.Now()
	closeAll(exhaust(t, visitor, loop(vt)))
	if !visitor.running() {
		t.Fatalf("hopc exited (code %d) after a flood of its visitor port", visitor.waitExit(time.Second))
	}
	waitProxy(t, loop(vt), ready)
	checkFDLog(t, visitor, began)
	for _, p := range []*proc{visitor, owner, srv} {
		if code := p.interrupt(10 * time.Second); code != 0 {
			t.Fatalf("%s exit code %d after SIGINT", p.name, code)
		}
	}
}

// TestFDFloodVhostPort: the same for the vhost HTTP port: a flood that
// exhausts hops' descriptors there leaves the vhost port serving requests
// once the flood is gone.
func TestFDFloodVhostPort(t *testing.T) {
	srvPort, httpPort := freePort(t), freePort(t)
	srv := startLimited(t, "hops", serverConfig(srvPort, fmt.Sprintf("vhostHTTPPort = %d\n", httpPort)), fdLimit)
	waitListening(t, loop(srvPort), ready)
	cli := start2(t, srvPort, httpProxy("web", infoService(t, "flooded"), `customDomains = ["flood.hop.test"]`))
	c := vhostClient(loop(httpPort), nil)
	get := func() bool {
		resp, err := c.Get("http://flood.hop.test/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	eventually(t, ready, "the http proxy to be routed", get)
	c.CloseIdleConnections()
	t.Logf("hops with a client and an http proxy: %d descriptors open", srv.openFDs())

	began := time.Now()
	closeAll(exhaust(t, srv, loop(httpPort)))
	if !srv.running() {
		t.Fatalf("hops exited (code %d) after a flood of its vhost HTTP port", srv.waitExit(time.Second))
	}
	eventually(t, ready, "the vhost port to serve again after the flood", get)
	checkFDLog(t, srv, began)
	c.CloseIdleConnections()
	for _, p := range []*proc{cli, srv} {
		if code := p.interrupt(10 * time.Second); code != 0 {
			t.Fatalf("%s exit code %d after SIGINT", p.name, code)
		}
	}
}
