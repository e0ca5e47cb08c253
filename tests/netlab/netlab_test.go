package netlab_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hopproxy/hop/tests/netlab"
)

// Addresses of the standard topology built by newTopo.
const (
	srvIP  = "198.51.100.10"
	srv2IP = "198.51.100.11"
	natWAN = "198.51.100.21"
	natLAN = "10.1.0.1"
	c1IP   = "10.1.0.10"
	c2IP   = "10.1.0.11"
)

// topo is a WAN with two servers and one NAT with two LAN clients.
type topo struct {
	lab       *netlab.Lab
	srv, srv2 *netlab.Host
	nat       *netlab.NAT
	c1, c2    *netlab.Host
}

func newTopo(t *testing.T, cfg netlab.NATConfig) *topo {
	t.Helper()
	lab := netlab.New(t)
	wan := lab.Network("wan", "198.51.100.0/24")
	lan := lab.Network("lan1", "10.1.0.0/24")
	tp := &topo{lab: lab, srv: lab.Host("srv"), srv2: lab.Host("srv2")}
	tp.srv.Attach(wan, srvIP)
	tp.srv2.Attach(wan, srv2IP)
	tp.nat = lab.NAT("nat1", wan, natWAN, lan, natLAN, cfg)
	tp.c1, tp.c2 = lab.Host("c1"), lab.Host("c2")
	tp.c1.Attach(lan, c1IP)
	tp.c2.Attach(lan, c2IP)
	tp.c1.DefaultRoute(natLAN)
	tp.c2.DefaultRoute(natLAN)
	return tp
}

func ap(ip string, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(ip), port)
}

// listenUDP opens a UDP socket on addr in h's namespace, closed on cleanup.
func listenUDP(t *testing.T, h *netlab.Host, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	var pc *net.UDPConn
	err := h.Do(func() (err error) {
		pc, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", h.Name(), err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// udpEcho answers every datagram to addr in h with the sender's address as
// the sender is seen there.
func udpEcho(t *testing.T, h *netlab.Host, addr netip.AddrPort) {
	t.Helper()
	pc := listenUDP(t, h, addr)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			pc.WriteToUDPAddrPort([]byte(from.String()), from)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
}

// observe asks the udpEcho at dst, from conn, how conn's address looks there.
// It resends every 100 ms until an answer comes or 5 s have passed.
func observe(t *testing.T, conn *net.UDPConn, dst netip.AddrPort) netip.AddrPort {
	t.Helper()
	buf := make([]byte, 1500)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if _, err := conn.WriteToUDPAddrPort([]byte("who"), dst); err != nil {
			t.Fatalf("sending to %v: %v", dst, err)
		}
		conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				t.Fatalf("reading from %v: %v", dst, err)
			}
			if from != dst {
				continue // a late answer to an earlier question
			}
			seen, err := netip.ParseAddrPort(string(buf[:n]))
			if err != nil {
				t.Fatalf("echo %v answered %q", dst, buf[:n])
			}
			return seen
		}
	}
	t.Fatalf("no answer from %v within 5s", dst)
	return netip.AddrPort{}
}

// tcpPair connects client (from local port lport, 0 for any) to a listener
// on addr in server and returns both ends, closed on cleanup. TCP keepalive
// is off on both.
func tcpPair(t *testing.T, client *netlab.Host, lport uint16, server *netlab.Host, addr netip.AddrPort) (c, s *net.TCPConn) {
	t.Helper()
	var ln *net.TCPListener
	err := server.Do(func() (err error) {
		ln, err = net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", server.Name(), err)
	}
	defer ln.Close()
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: -1}
	if lport != 0 {
		d.LocalAddr = &net.TCPAddr{Port: int(lport)}
	}
	err = client.Do(func() error {
		conn, err := d.Dial("tcp4", addr.String())
		if err == nil {
			c = conn.(*net.TCPConn)
		}
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", client.Name(), err)
	}
	t.Cleanup(func() { c.Close() })
	ln.SetDeadline(time.Now().Add(5 * time.Second))
	s, err = ln.AcceptTCP()
	if err != nil {
		t.Fatalf("%s: accept: %v", server.Name(), err)
	}
	s.SetKeepAlive(false)
	t.Cleanup(func() { s.Close() })
	return c, s
}

// readMsg reads exactly len(want) bytes from c within d and checks them.
func readMsg(c net.Conn, want string, d time.Duration) error {
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != want {
		return fmt.Errorf("read %q, want %q", buf, want)
	}
	return nil
}

func TestSameNetwork(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t)
	lan := lab.Network("lan", "10.9.0.0/24")
	a, b := lab.Host("a"), lab.Host("b")
	if got := a.Attach(lan, "10.9.0.1"); got != "eth0" {
		t.Errorf("Attach returned %q, want eth0", got)
	}
	b.Attach(lan, "10.9.0.2")

	// UDP both ways.
	udpEcho(t, b, ap("10.9.0.2", 5000))
	ca := listenUDP(t, a, ap("10.9.0.1", 5001))
	if got, want := observe(t, ca, ap("10.9.0.2", 5000)), ap("10.9.0.1", 5001); got != want {
		t.Errorf("b saw a as %v, want %v", got, want)
	}

	// TCP.
	c, s := tcpPair(t, a, 0, b, ap("10.9.0.2", 5002))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if err := readMsg(s, "ping", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if err := readMsg(c, "pong", 5*time.Second); err != nil {
		t.Fatal(err)
	}

	// Commands run in the host's namespace.
	ctx := t.Context()
	out, err := a.Run(ctx, "ip", "-o", "-4", "addr", "show", "dev", "eth0")
	if err != nil || !strings.Contains(string(out), "10.9.0.1/24") {
		t.Errorf("ip addr in a: %q, %v", out, err)
	}
	if _, err := a.Run(ctx, "false"); err == nil {
		t.Error("Run(false) succeeded")
	}

	// Sysctls are per namespace.
	a.Sysctl("net.ipv4.ip_default_ttl", "33")
	for h, want := range map[*netlab.Host]string{a: "33", b: "64"} {
		out, err := h.Run(ctx, "cat", "/proc/sys/net/ipv4/ip_default_ttl")
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("%s: ip_default_ttl = %q, %v; want %s", h.Name(), out, err, want)
		}
	}
}

func TestPortPreservingNAT(t *testing.T) {
	t.Parallel()
	tp := newTopo(t, netlab.NATConfig{Mode: netlab.PortPreserving})
	dsts := []netip.AddrPort{ap(srvIP, 7001), ap(srvIP, 7002), ap(srv2IP, 7001)}
	udpEcho(t, tp.srv, dsts[0])
	udpEcho(t, tp.srv, dsts[1])
	udpEcho(t, tp.srv2, dsts[2])

	// One socket keeps its port towards every destination.
	c1 := listenUDP(t, tp.c1, ap(c1IP, 40000))
	for _, dst := range dsts {
		if got, want := observe(t, c1, dst), ap(natWAN, 40000); got != want {
			t.Errorf("c1:40000 → %v seen as %v, want %v", dst, got, want)
		}
	}
	// A second LAN host with the same source port to the same destination
	// cannot have the same tuple, so it gets another port.
	c2 := listenUDP(t, tp.c2, ap(c2IP, 40000))
	got := observe(t, c2, dsts[0])
	if got.Addr() != netip.MustParseAddr(natWAN) || got.Port() == 40000 {
		t.Errorf("c2:40000 → %v seen as %v, want %s:<not 40000>", dsts[0], got, natWAN)
	}
	t.Logf("c2:40000 → %v mapped to %v", dsts[0], got)

	// TCP source ports are kept too.
	_, s := tcpPair(t, tp.c1, 41000, tp.srv, ap(srvIP, 7100))
	if got, want := s.RemoteAddr().(*net.TCPAddr).AddrPort(), ap(natWAN, 41000); got != want {
		t.Errorf("TCP from c1:41000 seen as %v, want %v", got, want)
	}
}

func TestRandomPortNAT(t *testing.T) {
	t.Parallel()
	for _, mode := range []netlab.NATMode{netlab.RandomPort, netlab.FullyRandomPort} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			tp := newTopo(t, netlab.NATConfig{Mode: mode})
			dsts := []netip.AddrPort{ap(srvIP, 7001), ap(srvIP, 7002), ap(srv2IP, 7001)}
			udpEcho(t, tp.srv, dsts[0])
			udpEcho(t, tp.srv, dsts[1])
			udpEcho(t, tp.srv2, dsts[2])

			c1 := listenUDP(t, tp.c1, ap(c1IP, 40000))
			seen := make(map[uint16]netip.AddrPort)
			for _, dst := range dsts {
				got := observe(t, c1, dst)
				t.Logf("%v: c1:40000 → %v mapped to %v", mode, dst, got)
				if got.Addr() != netip.MustParseAddr(natWAN) {
					t.Errorf("→ %v: seen from %v, want address %s", dst, got, natWAN)
				}
				if other, dup := seen[got.Port()]; dup {
					t.Errorf("→ %v and → %v share external port %d", other, dst, got.Port())
				}
				seen[got.Port()] = dst
				// The mapping is stable for one destination.
				if again := observe(t, c1, dst); again != got {
					t.Errorf("→ %v: mapping changed from %v to %v", dst, got, again)
				}
			}
		})
	}
}

// udpInbox collects what arrives on pc, as "<payload> from <addr>".
func udpInbox(t *testing.T, pc *net.UDPConn) <-chan string {
	ch := make(chan string, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			select {
			case ch <- fmt.Sprintf("%s from %v", buf[:n], from):
			default:
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return ch
}

// expectNothing sends msg from pc to dst every 100 ms for d and fails if it
// arrives in inbox meanwhile. Other messages in inbox are skipped.
func expectNothing(t *testing.T, inbox <-chan string, pc *net.UDPConn, dst netip.AddrPort, msg string, d time.Duration) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	end := time.After(d)
	for {
		if _, err := pc.WriteToUDPAddrPort([]byte(msg), dst); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-inbox:
			if strings.HasPrefix(got, msg+" ") {
				t.Fatalf("%s to %v: LAN host received %q", msg, dst, got)
			}
		case <-end:
			return
		case <-tick.C:
		}
	}
}

// expectMsg sends msg from pc to dst every 100 ms until it arrives in inbox,
// for at most 5 s.
func expectMsg(t *testing.T, inbox <-chan string, pc *net.UDPConn, dst netip.AddrPort, msg string) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	end := time.After(5 * time.Second)
	for {
		if _, err := pc.WriteToUDPAddrPort([]byte(msg), dst); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-inbox:
			if strings.HasPrefix(got, msg+" ") {
				return
			}
			// Something earlier, resent before it arrived: skip it.
		case <-end:
			t.Fatalf("%s to %v: not received within 5s", msg, dst)
		case <-tick.C:
		}
	}
}

func TestNATFiltersInbound(t *testing.T) {
	t.Parallel()
	tp := newTopo(t, netlab.NATConfig{Mode: netlab.PortPreserving})
	mapped := ap(natWAN, 40000)
	sA := listenUDP(t, tp.srv, ap(srvIP, 7001))
	sB := listenUDP(t, tp.srv, ap(srvIP, 7002))
	s2 := listenUDP(t, tp.srv2, ap(srv2IP, 7001))
	cl := listenUDP(t, tp.c1, ap(c1IP, 40000))
	inbox := udpInbox(t, cl)

	// Unsolicited: no mapping yet.
	expectNothing(t, inbox, sA, mapped, "unsolicited", time.Second)

	// c1 opens a mapping towards srv:7001, which can now answer.
	srvInbox := udpInbox(t, sA)
	expectMsg(t, srvInbox, cl, ap(srvIP, 7001), "hello")
	expectMsg(t, inbox, sA, mapped, "reply1")

	// Filtering is address- and port-dependent.
	expectNothing(t, inbox, sB, mapped, "other-port", time.Second)
	expectNothing(t, inbox, s2, mapped, "other-host", time.Second)
	// The mapping is still there: the drops above were filtering.
	expectMsg(t, inbox, sA, mapped, "reply2")
}

func TestTCPIdleTimeout(t *testing.T) {
	t.Parallel()
	tp := newTopo(t, netlab.NATConfig{
		Mode:                  netlab.PortPreserving,
		TCPEstablishedTimeout: 3 * time.Second,
		TCPLoose:              false,
		DropInvalid:           true,
	})
	const idle = 5 * time.Second

	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		c, s := tcpPair(t, tp.c1, 0, tp.srv, ap(srvIP, 7201))
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if err := readMsg(s, "hello", 5*time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(idle) // the idle period under test
		if ct, err := tp.nat.Conntrack(t.Context()); err == nil {
			for _, e := range ct {
				if strings.Contains(e, "dport=7201 ") {
					t.Errorf("conntrack entry survived %v idle: %s", idle, e)
				}
			}
		}
		if _, err := c.Write([]byte("late")); err != nil {
			t.Fatalf("write after idle: %v (want it to succeed and vanish)", err)
		}
		err := readMsg(s, "late", 4*time.Second)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("server read after idle: %v, want a timeout (data lost at the NAT)", err)
		}
	})

	t.Run("keepalive", func(t *testing.T) {
		t.Parallel()
		c, s := tcpPair(t, tp.c2, 0, tp.srv, ap(srvIP, 7202))
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for start := time.Now(); time.Since(start) < idle+time.Second; {
			<-tick.C
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			if err := readMsg(s, "ping", 2*time.Second); err != nil {
				t.Fatalf("ping after %v: %v", time.Since(start).Round(time.Second), err)
			}
		}
		if _, err := c.Write([]byte("late")); err != nil {
			t.Fatal(err)
		}
		if err := readMsg(s, "late", 4*time.Second); err != nil {
			t.Fatalf("server read: %v", err)
		}
	})
}

func TestProcesses(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t)
	h := lab.Host("h")
	ctx := t.Context()

	p, err := h.Start(ctx, "sh", "-c", "echo started; exec sleep 300")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !bytes.Contains(p.Output(), []byte("started")); {
		if time.Now().After(deadline) {
			t.Fatalf("no output: %q", p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The PID is the program's own, and it runs in h's namespace.
	self, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", p.Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var want string
	if err := h.Do(func() (err error) { want, err = os.Readlink("/proc/thread-self/ns/net"); return err }); err != nil {
		t.Fatal(err)
	}
	if self != want {
		t.Errorf("process in %s, want %s", self, want)
	}

	// A command with the caller's own stdout.
	var buf bytes.Buffer
	cmd := h.Command(ctx, "echo", "hi")
	cmd.Stdout = &buf
	q, err := h.StartCmd(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Wait(); err != nil || buf.String() != "hi\n" || q.Output() != nil {
		t.Errorf("Wait = %v, stdout %q, Output %q", err, buf.String(), q.Output())
	}

	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("process still running after Close")
	}
	if _, err := h.Start(ctx, "true"); !errors.Is(err, netlab.ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
	if err := h.Do(func() error { return nil }); !errors.Is(err, netlab.ErrClosed) {
		t.Errorf("Do after Close: %v, want ErrClosed", err)
	}
}

func TestDoRestoresNamespace(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t)
	h := lab.Host("h")
	before, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var inside string
	if err := h.Do(func() (err error) { inside, err = os.Readlink("/proc/thread-self/ns/net"); return err }); err != nil {
		t.Fatal(err)
	}
	if inside == before {
		t.Errorf("Do ran in the caller's namespace %s", inside)
	}
	wantErr := errors.New("from fn")
	if err := h.Do(func() error { return wantErr }); !errors.Is(err, wantErr) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	// Whatever thread we are on now, it is in the original namespace.
	if after, _ := os.Readlink("/proc/thread-self/ns/net"); after != before {
		t.Errorf("after Do: namespace %s, want %s", after, before)
	}
}

// With nf_conntrack_tcp_loose=1 (the kernel default), conntrack picks a
// forgotten connection up again from its next LAN packet, with a fresh
// mapping that keeps the port when it is free: an idle connection survives
// as long as the client speaks first.
func TestTCPLoosePicksUp(t *testing.T) {
	t.Parallel()
	tp := newTopo(t, netlab.NATConfig{
		TCPEstablishedTimeout: 2 * time.Second,
		TCPLoose:              true,
		DropInvalid:           true,
	})
	c, s := tcpPair(t, tp.c1, 0, tp.srv, ap(srvIP, 7203))
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := readMsg(s, "hello", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second) // the idle period under test
	if _, err := c.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	if err := readMsg(s, "late", 4*time.Second); err != nil {
		t.Fatalf("server read after idle with TCPLoose: %v", err)
	}
}

func TestUDPTimeout(t *testing.T) {
	t.Parallel()
	tp := newTopo(t, netlab.NATConfig{UDPTimeout: 2 * time.Second})
	mapped := ap(natWAN, 40000)
	srvSock := listenUDP(t, tp.srv, ap(srvIP, 7001))
	srvInbox := udpInbox(t, srvSock)

	c1 := listenUDP(t, tp.c1, ap(c1IP, 40000))
	inbox1 := udpInbox(t, c1)
	expectMsg(t, srvInbox, c1, ap(srvIP, 7001), "open1")
	expectMsg(t, inbox1, srvSock, mapped, "reply1")

	// Idle past the timeout: the mapping is gone, the server is filtered.
	time.Sleep(3 * time.Second) // the idle period under test
	expectNothing(t, inbox1, srvSock, mapped, "after-idle", time.Second)

	// With the client sending every second the mapping stays.
	expectMsg(t, srvInbox, c1, ap(srvIP, 7001), "open2")
	for range 4 {
		time.Sleep(time.Second) // the keepalive interval under test
		if _, err := c1.WriteToUDPAddrPort([]byte("keepalive"), ap(srvIP, 7001)); err != nil {
			t.Fatal(err)
		}
	}
	expectMsg(t, inbox1, srvSock, mapped, "reply2")
}

// TestNATLoss sends 1000 datagrams through a NAT with LossPercent 20 to an
// echo: about 80 % must reach the server and about 64 % come back (each
// direction loses 20 %), far from both 0 % and 100 % loss.
func TestNATLoss(t *testing.T) {
	t.Parallel()
	if err := (netlab.NATConfig{LossPercent: 101}).Validate(); err == nil {
		t.Error("LossPercent 101 accepted")
	}
	tp := newTopo(t, netlab.NATConfig{LossPercent: 20})
	if rs := tp.nat.Ruleset(); !strings.Contains(rs, "numgen random mod 100 < 20 drop") {
		t.Fatalf("ruleset without the loss rule:\n%s", rs)
	}
	srv := listenUDP(t, tp.srv, ap(srvIP, 7001))
	var reached int
	done := make(chan struct{})
	go func() { // echo, counting what arrived
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			reached++
			srv.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	c1 := listenUDP(t, tp.c1, ap(c1IP, 40000))
	echoes := make(chan int)
	go func() {
		buf, n := make([]byte, 1500), 0
		for {
			c1.SetReadDeadline(time.Now().Add(time.Second)) // quiet for a second: all that will come came
			if _, _, err := c1.ReadFromUDPAddrPort(buf); err != nil {
				echoes <- n
				return
			}
			n++
		}
	}()
	const sent = 1000
	for i := range sent {
		if _, err := c1.WriteToUDPAddrPort([]byte(fmt.Sprintf("datagram %d", i)), ap(srvIP, 7001)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Microsecond) // pacing, so that no socket buffer overflows
	}
	back := <-echoes
	srv.Close()
	<-done
	t.Logf("LossPercent 20: %d of %d datagrams reached the server, %d echoes came back", reached, sent, back)
	// Binomial: 800 ± 13 and 640 ± 15 (one standard deviation); the
	// bounds are more than 5 of them away.
	if reached < 730 || reached > 870 {
		t.Errorf("%d of %d reached the server, want about 800", reached, sent)
	}
	if back < 560 || back > 720 {
		t.Errorf("%d of %d echoes came back, want about 640", back, sent)
	}
}

// TestAttachDelayed: a host attached with a 15 ms delay line sees UDP
// round trips of 30 ms or a little more to a host attached plainly, and a
// TCP transfer (GSO frames, partial checksums) arrives intact, also with
// DisableOffloads on both hosts.
func TestAttachDelayed(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t)
	lan := lab.Network("lan", "10.9.0.0/24")
	a, b := lab.Host("a"), lab.Host("b")
	a.AttachDelayed(lan, "10.9.0.1", 15*time.Millisecond)
	b.Attach(lan, "10.9.0.2")
	udpEcho(t, b, ap("10.9.0.2", 5000))
	ca := listenUDP(t, a, ap("10.9.0.1", 5001))
	observe(t, ca, ap("10.9.0.2", 5000)) // ARP done
	var best time.Duration
	for i := range 5 {
		start := time.Now()
		if got := observe(t, ca, ap("10.9.0.2", 5000)); got != ap("10.9.0.1", 5001) {
			t.Fatalf("seen as %v", got)
		}
		if rtt := time.Since(start); i == 0 || rtt < best {
			best = rtt
		}
	}
	t.Logf("best UDP round trip through the delay line: %v", best)
	if best < 30*time.Millisecond || best > 80*time.Millisecond {
		t.Errorf("round trip %v, want 30 ms or a little more", best)
	}

	// TCP with offloads (TSO/GSO frames through the delay line), then
	// without (one packet per frame, checksums made by the stack).
	for i, port := range []uint16{5002, 5003} {
		if i == 1 {
			a.DisableOffloads("eth0")
			b.DisableOffloads("eth0")
		}
		c, s := tcpPair(t, a, 0, b, ap("10.9.0.2", port))
		const size = 4 << 20
		go func() {
			buf := bytes.Repeat([]byte("0123456789abcdef"), size/16)
			c.Write(buf)
			c.CloseWrite()
		}()
		s.SetReadDeadline(time.Now().Add(20 * time.Second))
		got, err := io.ReadAll(s)
		if err != nil || !bytes.Equal(got, bytes.Repeat([]byte("0123456789abcdef"), size/16)) {
			t.Fatalf("TCP through the delay line (offloads off: %v): %d bytes, %v", i == 1, len(got), err)
		}
	}
}

// TestGateway: Lab.Gateway puts the NAT at .1 and the host at .10 of the
// LAN, routed through the NAT; the host's DialContext and ListenPacket
// open sockets in its namespace (the WAN host sees them from the NAT);
// NAT.DropPortMapping silences the gateway's port-mapping port.
func TestGateway(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t)
	wan := lab.Network("wan", "198.51.100.0/24")
	srv := lab.Host("srv")
	srv.Attach(wan, srvIP)
	g := lab.Gateway(netlab.GatewayConfig{Name: "gw", WAN: wan, WANAddr: natWAN, LAN: "10.9.0.0/24", Host: "home",
		NAT: netlab.NATConfig{Mode: netlab.PortPreserving}})
	if g.Miniupnpd != nil || g.NAT.LANAddr() != netip.MustParseAddr("10.9.0.1") || g.NAT.WANAddr() != netip.MustParseAddr(natWAN) ||
		g.LAN.Prefix() != netip.MustParsePrefix("10.9.0.0/24") {
		t.Fatalf("gateway: NAT LAN %v WAN %v, network %v, miniupnpd %v", g.NAT.LANAddr(), g.NAT.WANAddr(), g.LAN.Prefix(), g.Miniupnpd)
	}
	if a := g.Host.Addrs(); len(a) != 1 || a[0] != netip.MustParseAddr("10.9.0.10") {
		t.Fatalf("host addresses %v, want [10.9.0.10]", a)
	}

	udpEcho(t, srv, ap(srvIP, 7001))
	pc, err := g.Host.ListenPacket(t.Context(), "udp4", "0.0.0.0:40000")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if got := observe(t, pc.(*net.UDPConn), ap(srvIP, 7001)); got != ap(natWAN, 40000) {
		t.Fatalf("the host's UDP socket is seen as %v, want %v (through the NAT, port kept)", got, ap(natWAN, 40000))
	}

	var ln net.Listener
	if err := srv.Do(func() (err error) { ln, err = net.Listen("tcp4", srvIP+":7002"); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	from := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			from <- err.Error()
			return
		}
		from <- c.RemoteAddr().(*net.TCPAddr).IP.String()
		c.Close()
	}()
	c, err := g.Host.DialContext(t.Context(), "tcp4", srvIP+":7002")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got := <-from; got != natWAN {
		t.Fatalf("the host's TCP connection came from %s, want the NAT's %s", got, natWAN)
	}

	// Nothing listens on the gateway's 5351: the host is told so (ICMP
	// port unreachable), until DropPortMapping silences the gateway.
	ask := func() error {
		c, err := g.Host.DialContext(t.Context(), "udp4", "10.9.0.1:5351")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte{2, 0}) // a PCP header's first bytes; nothing answers it
		c.SetReadDeadline(time.Now().Add(time.Second))
		_, err = c.Read(make([]byte, 64))
		return err
	}
	if err := ask(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("a request to the gateway's 5351: %v, want connection refused", err)
	}
	if err := g.NAT.DropPortMapping(); err != nil {
		t.Fatal(err)
	}
	if err := ask(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a request to the silenced gateway's 5351: %v, want no answer at all", err)
	}
}
