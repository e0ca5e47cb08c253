package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// ppService is a local TCP service that decodes the PROXY protocol header
// hopc writes and answers "<version> <command> <src> <dst>\n", then
// echoes the rest.
func ppService(t *testing.T) int {
	return tcpService(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		h, err := proxyproto.Read(br)
		if err != nil {
			fmt.Fprintf(c, "no header: %v\n", err)
			return
		}
		fmt.Fprintf(c, "%d %s %v %v\n", h.Version, cmdName(h), h.SourceAddr, h.DestinationAddr)
		io.Copy(c, br)
	})
}

func cmdName(h *proxyproto.Header) string {
	if h.Command.IsLocal() {
		return "LOCAL"
	}
	return "PROXY"
}

// ppLine dials addr, reads the service's first line, and checks that the
// bytes after the header still echo. It returns the line and the dialing
// side's address (what the service must see as the source).
func ppLine(addr string) (line, local string, err error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("after-header")); err != nil {
		return "", "", err
	}
	br := bufio.NewReader(c)
	line, err = br.ReadString('\n')
	if err != nil {
		return "", "", err
	}
	rest := make([]byte, len("after-header"))
	if _, err := io.ReadFull(br, rest); err != nil {
		return "", "", fmt.Errorf("echo after header: %w (line %q)", err, line)
	}
	if string(rest) != "after-header" {
		return "", "", fmt.Errorf("echo after header is %q", rest)
	}
	return strings.TrimSpace(line), c.LocalAddr().String(), nil
}

func TestProxyProtocolTCPAndUDP(t *testing.T) {
	svc := ppService(t)
	// udp service: decodes the v2 DGRAM header in front of each datagram
	// and answers with the decoded source and the payload.
	upc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udone := make(chan struct{})
	go func() {
		defer close(udone)
		buf := make([]byte, 65535)
		for {
			n, a, err := upc.ReadFrom(buf)
			if err != nil {
				return
			}
			br := bufio.NewReader(bytes.NewReader(buf[:n]))
			h, err := proxyproto.Read(br)
			var reply string
			if err != nil {
				reply = "no header: " + err.Error()
			} else {
				rest, _ := io.ReadAll(br)
				reply = fmt.Sprintf("%d %s dgram=%t %v %v %s", h.Version, cmdName(h), h.TransportProtocol.IsDatagram(), h.SourceAddr, h.DestinationAddr, rest)
			}
			upc.WriteTo([]byte(reply), a)
		}
	}()
	t.Cleanup(func() { upc.Close(); <-udone })

	r1, r2, ru := freePort(t), freePort(t), freePort(t)
	proxies := tcpProxy("pp1", svc, r1) + "transport.proxyProtocolVersion = \"v1\"\n" +
		tcpProxy("pp2", svc, r2) + "transport.proxyProtocolVersion = \"v2\"\n" +
		udpProxy("ppu", upc.LocalAddr().(*net.UDPAddr).Port, ru) + "transport.proxyProtocolVersion = \"v2\"\n"
	setup(t, "", proxies)
	for _, c := range []struct {
		port    int
		version string
	}{{r1, "1"}, {r2, "2"}} {
		var line, local string
		eventually(t, ready, "a connection through the v"+c.version+" proxy", func() bool {
			var err error
			line, local, err = ppLine(loop(c.port))
			return err == nil
		})
		want := fmt.Sprintf("%s PROXY %s %s", c.version, local, loop(c.port))
		if line != want {
			t.Errorf("v%s: service saw %q, want %q", c.version, line, want)
		}
	}

	uc, err := net.Dial("udp", loop(ru))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	var reply string
	eventually(t, ready, "a datagram through the udp proxy", func() bool {
		uc.Write([]byte("dgram"))
		uc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 2048)
		n, err := uc.Read(buf)
		if err != nil {
			return false
		}
		reply = string(buf[:n])
		return true
	})
	want := fmt.Sprintf("2 PROXY dgram=true %s %s dgram", uc.LocalAddr(), loop(ru))
	if reply != want {
		t.Errorf("udp: service saw %q, want %q", reply, want)
	}
}

// TestProxyProtocolSTCP: the visitor of an stcp proxy sends its local
// connection's addresses, sealed, and the owner's local service gets them
// in the header: the application's address on the visitor's host, and the
// visitor's bind address.
func TestProxyProtocolSTCP(t *testing.T) {
	svc := ppService(t)
	srvPort := freePort(t)
	start(t, "hops", serverConfig(srvPort, ""))
	waitListening(t, loop(srvPort), ready)
	start(t, "hopc", withID(clientConfig(srvPort, fmt.Sprintf(`
[[proxies]]
name = "sec"
type = "stcp"
secretKey = "pp-secret-key"
localPort = %d
transport.proxyProtocolVersion = "v2"
`, svc)), "owner"))
	vt := freePort(t)
	start(t, "hopc", withID(clientConfig(srvPort, fmt.Sprintf(`
[[visitors]]
name = "v"
type = "stcp"
serverName = "sec"
secretKey = "pp-secret-key"
bindPort = %d
`, vt)), "visitor"))
	var line, local string
	eventually(t, ready, "a connection through the stcp visitor", func() bool {
		var err error
		line, local, err = ppLine(loop(vt))
		return err == nil
	})
	if want := fmt.Sprintf("2 PROXY %s %s", local, loop(vt)); line != want {
		t.Errorf("stcp: service saw %q, want %q", line, want)
	}
}

// TestBandwidthLimit: a 1MB bandwidthLimit (1 MiB/s) holds a transfer
// through the proxy within 10 % of the rate, downloads and uploads, with
// hopc applying it (client mode) and with hops applying it (server mode).
// The one wall-clock assertion of the suite: each transfer lasts about 4 s.
func TestBandwidthLimit(t *testing.T) {
	const total = 4 << 20
	const rate = 1 << 20
	// source writes total bytes to each connection.
	source := tcpService(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(time.Minute))
		pattern(c, total, 7)
	})
	// sink reads total bytes and answers the rate it saw, bytes per
	// second, measured from its first read to its last.
	sink := tcpService(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(time.Minute))
		r, err := measure(c, total)
		if err != nil {
			fmt.Fprintf(c, "error %v\n", err)
			return
		}
		fmt.Fprintf(c, "%.0f\n", r)
	})
	rc, rcs, rs, rss := freePort(t), freePort(t), freePort(t), freePort(t)
	limited := func(name string, local, remote int, mode string) string {
		return tcpProxy(name, local, remote) + "transport.bandwidthLimit = \"1MB\"\ntransport.bandwidthLimitMode = \"" + mode + "\"\n"
	}
	srv, _, _ := setup(t, "", limited("down-c", source, rc, "client")+limited("up-c", sink, rcs, "client")+
		limited("down-s", source, rs, "server")+limited("up-s", sink, rss, "server"))
	eventually(t, ready, "the four proxies", func() bool { return srv.count("proxy started") >= 4 })
	if n := srv.count("bandwidth_limit_bytes_per_second=1048576"); n != 2 {
		t.Errorf("hops applies the limit of %d proxies, want the 2 in server mode", n)
	}
	// A transfer slower than the limit by more than 10 % is tried again,
	// up to three times in all: on a loaded machine (the -race binaries
	// share two cores with other tests) a process that is not scheduled
	// for longer than a bucket's burst loses tokens, which is no fault of
	// the limiter. Faster than the limit by more than 10 % fails at once.
	check := func(what string, transfer func() (float64, error)) {
		for try := 1; ; try++ {
			got, err := transfer()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			t.Logf("%s, try %d: %.0f B/s (limit %d)", what, try, got, rate)
			switch {
			case got > 1.1*rate:
				t.Errorf("%s: %.0f B/s, more than 10%% over the limit of %d", what, got, rate)
				return
			case got >= 0.9*rate:
				return
			case try == 3:
				t.Errorf("%s: %.0f B/s, more than 10%% under the limit of %d, three times", what, got, rate)
				return
			}
		}
	}
	for _, c := range []struct {
		mode     string
		down, up int
	}{{"client", rc, rcs}, {"server", rs, rss}} {
		// No probe connection first (waitListening): the limit is shared
		// by all the proxy's connections, and after the user closes a
		// connection hops half-closes its stream (yamux FIN), so hopc goes
		// on sending the source's bytes into it, with tokens of the same
		// bucket, until the stream is torn down. hops logged "proxy
		// started": the ports are open.
		check(c.mode+" mode download", func() (float64, error) {
			conn, err := net.DialTimeout("tcp", loop(c.down), time.Second)
			if err != nil {
				return 0, err
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(time.Minute))
			return measure(conn, total)
		})
		check(c.mode+" mode upload", func() (float64, error) {
			conn, err := net.DialTimeout("tcp", loop(c.up), time.Second)
			if err != nil {
				return 0, err
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(time.Minute))
			if err := pattern(conn, total, 8); err != nil {
				return 0, err
			}
			line, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil {
				return 0, fmt.Errorf("reading the sink's rate: %w", err)
			}
			var up float64
			if _, err := fmt.Sscanf(line, "%f", &up); err != nil {
				return 0, fmt.Errorf("sink said %q", line)
			}
			return up, nil
		})
	}
}

// measure reads n bytes from r and returns the rate after the first read:
// the bytes of the later reads over the time from the first to the last.
func measure(r io.Reader, n int) (float64, error) {
	buf := make([]byte, 32<<10)
	var first time.Time
	var firstN, got int
	for got < n {
		k, err := r.Read(buf)
		if k > 0 && first.IsZero() {
			first, firstN = time.Now(), k
		}
		got += k
		if err != nil {
			return 0, fmt.Errorf("after %d of %d bytes: %w", got, n, err)
		}
	}
	d := time.Since(first)
	if d < 3*time.Second {
		return 0, fmt.Errorf("%d bytes in %v: shorter than the 3 s the rate is measured over", n, d)
	}
	return float64(got-firstN) / d.Seconds(), nil
}

// nameService answers every connection with its name and a newline.
func nameService(t *testing.T, name string) int {
	return tcpService(t, func(c net.Conn) { fmt.Fprintln(c, name) })
}

// whoAnswers dials addr and returns the first line the service sends.
func whoAnswers(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// spread makes n connections to addr and counts who answered; failed
// connections count under "".
func spread(addr string, n int) map[string]int {
	seen := map[string]int{}
	for range n {
		who, err := whoAnswers(addr)
		if err != nil {
			who = ""
		}
		seen[who]++
	}
	return seen
}

func groupProxy(name string, local, remote int, key string) string {
	return tcpProxy(name, local, remote) + fmt.Sprintf("loadBalancer.group = \"web\"\nloadBalancer.groupKey = %q\n", key)
}

// TestLoadBalancingGroup: two hopc in one group behind one remotePort
// share the connections; a third with a wrong groupKey is refused and
// leaves the group as it is; with one hopc killed, the other takes all the
// traffic; with both gone the port closes.
func TestLoadBalancingGroup(t *testing.T) {
	a, b, c := nameService(t, "a"), nameService(t, "b"), nameService(t, "c")
	srvPort := freePort(t)
	srv := start(t, "hops", serverConfig(srvPort, ""))
	waitListening(t, loop(srvPort), ready)
	remote := freePort(t)
	ca := start(t, "hopc", withID(clientConfig(srvPort, groupProxy("web-a", a, remote, "k1")), "ca"))
	eventually(t, ready, "the group to open", func() bool { return srv.count("load-balancing group opened") == 1 })
	cb := start(t, "hopc", withID(clientConfig(srvPort, groupProxy("web-b", b, remote, "k1")), "cb"))
	eventually(t, ready, "the second member to join", func() bool { return srv.count("proxy joined load-balancing group") == 1 })
	cc := start(t, "hopc", withID(clientConfig(srvPort, groupProxy("web-c", c, remote, "wrong")), "cc"))
	eventually(t, ready, "the wrong key to be refused", func() bool {
		return cc.count("loadBalancer.groupKey does not match the key of group") > 0
	})
	seen := spread(loop(remote), 20)
	if seen["a"] < 5 || seen["b"] < 5 || seen["c"] != 0 || seen["a"]+seen["b"] != 20 {
		t.Fatalf("20 connections reached %v; want both members, round robin, and not the refused one", seen)
	}

	if err := ca.cmd.Process.Kill(); err != nil { // by PID
		t.Fatal(err)
	}
	ca.waitExit(10 * time.Second)
	eventually(t, ready, "the killed member to leave the group", func() bool { return srv.count("proxy left load-balancing group") == 1 })
	if seen := spread(loop(remote), 10); seen["b"] != 10 {
		t.Fatalf("with a killed, 10 connections reached %v; want all at b", seen)
	}
	if code := cb.interrupt(10 * time.Second); code != 0 {
		t.Fatalf("hopc b exit code %d", code)
	}
	eventually(t, ready, "the port to close with the last member", func() bool {
		conn, err := net.DialTimeout("tcp", loop(remote), time.Second)
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
}

// switchable is a local service answering its name that can be stopped
// and started again on the same port.
type switchable struct {
	t    *testing.T
	name string
	port int
	ln   net.Listener
	done chan struct{}
}

func newSwitchable(t *testing.T, name string) *switchable {
	s := &switchable{t: t, name: name, port: freePort(t)}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *switchable) start() {
	ln, err := net.Listen("tcp", loop(s.port))
	if err != nil {
		s.t.Fatal(err)
	}
	s.ln, s.done = ln, make(chan struct{})
	go func() {
		defer close(s.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, s.name)
			c.Close()
		}
	}()
}

func (s *switchable) stop() {
	if s.ln != nil {
		s.ln.Close()
		<-s.done
		s.ln = nil
	}
}

// TestHealthCheckWithdrawsMember: a member whose local service stops is
// withdrawn after maxFailed checks and the traffic goes to the other
// member; when the service is back the member registers again.
func TestHealthCheckWithdrawsMember(t *testing.T) {
	a, b := newSwitchable(t, "a"), newSwitchable(t, "b")
	srvPort := freePort(t)
	srv := start(t, "hops", serverConfig(srvPort, ""))
	waitListening(t, loop(srvPort), ready)
	remote := freePort(t)
	const hc = "healthCheck.type = \"tcp\"\nhealthCheck.intervalSeconds = 1\nhealthCheck.timeoutSeconds = 1\nhealthCheck.maxFailed = 2\n"
	ca := start(t, "hopc", withID(clientConfig(srvPort, groupProxy("web-a", a.port, remote, "k")+hc), "ca"))
	eventually(t, ready, "the group to open", func() bool { return srv.count("load-balancing group opened") == 1 })
	start(t, "hopc", withID(clientConfig(srvPort, groupProxy("web-b", b.port, remote, "k")+hc), "cb"))
	eventually(t, ready, "the second member", func() bool { return srv.count("proxy joined load-balancing group") == 1 })
	if seen := spread(loop(remote), 10); seen["a"] != 5 || seen["b"] != 5 {
		t.Fatalf("10 connections reached %v; want 5 each", seen)
	}

	a.stop()
	eventually(t, ready, "a to be withdrawn", func() bool {
		return ca.count("health check failed: proxy withdrawn") == 1 && srv.count("proxy left load-balancing group") == 1
	})
	if seen := spread(loop(remote), 10); seen["b"] != 10 {
		t.Fatalf("with a withdrawn, 10 connections reached %v; want all at b", seen)
	}

	a.start()
	eventually(t, ready, "a to come back", func() bool {
		return ca.count("health check passed: proxy registered again") == 1 && srv.count("proxy joined load-balancing group") == 2
	})
	if seen := spread(loop(remote), 10); seen["a"] != 5 || seen["b"] != 5 {
		t.Fatalf("with a back, 10 connections reached %v; want 5 each", seen)
	}
	// hops stops cleanly with the group open, and closes its port.
	if code := srv.interrupt(10 * time.Second); code != 0 {
		t.Fatalf("hops exit code %d after SIGINT", code)
	}
	if conn, err := net.DialTimeout("tcp", loop(remote), time.Second); err == nil {
		conn.Close()
		t.Fatal("the group's port still accepts after hops stopped")
	}
}
