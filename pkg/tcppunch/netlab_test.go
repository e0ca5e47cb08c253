package tcppunch_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/server"
	"github.com/hopproxy/hop/pkg/tcppunch"
	"github.com/hopproxy/hop/pkg/xtcp"
	"github.com/hopproxy/hop/tests/netlab"
)

const (
	srvIP    = "198.51.100.10"
	srvPort  = 7000
	nat1WAN  = "198.51.100.21"
	nat2WAN  = "198.51.100.22"
	nat3WAN  = "198.51.100.23"
	bulkSize = 10 << 20
)

// startHops runs the real server code (pkg/server: TLS control port with
// STUN over TCP, UDP STUN) inside h's namespace until the test ends.
func startHops(t *testing.T, h *netlab.Host) {
	t.Helper()
	cfg := config.DefaultServer()
	cfg.Auth.Token = "netlab-token-0123456789abcdef"
	cfg.BindAddr = srvIP
	cfg.BindPort = srvPort
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := server.New(&cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := h.Do(func() error { return s.Listen(ctx) }); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hops: %v", err)
		}
	})
}

// counters adds an nftables table "count" to h with a counter per rule
// given (name → chain hook and match), and returns a reader of their byte
// counts.
type counters struct {
	h *netlab.Host
}

func addCounters(t *testing.T, h *netlab.Host, chains map[string]string) counters {
	t.Helper()
	ctx := context.Background()
	cmds := [][]string{{"add", "table", "ip", "count"}}
	for name, spec := range chains {
		var hook, match string
		fmt.Sscanf(spec, "%s", &hook)
		match = spec[len(hook):]
		cmds = append(cmds,
			[]string{"add chain ip count " + name + " { type filter hook " + hook + " priority -10; policy accept; }"},
			[]string{"add rule ip count " + name + " " + match + " counter"})
	}
	for _, c := range cmds {
		if _, err := h.Run(ctx, "nft", c...); err != nil {
			t.Fatal(err)
		}
	}
	return counters{h}
}

var counterRE = regexp.MustCompile(`counter packets (\d+) bytes (\d+)`)

// bytes returns the byte count of chain's counter.
func (c counters) bytes(t *testing.T, chain string) int64 {
	t.Helper()
	out, err := c.h.Run(context.Background(), "nft", "list", "chain", "ip", "count", chain)
	if err != nil {
		t.Fatal(err)
	}
	m := counterRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no counter in %s", out)
	}
	n, _ := strconv.ParseInt(string(m[2]), 10, 64)
	return n
}

type client struct {
	h  *netlab.Host
	ep *tcppunch.Endpoint
	cs []xtcp.Candidate
}

// prepare binds a punching port in h, learns its mapping from hops over
// STUN on TCP and returns its candidates.
func prepare(t *testing.T, h *netlab.Host) (*client, netip.AddrPort) {
	t.Helper()
	ep, err := tcppunch.Listen(tcppunch.ReuseSockets{Do: h.Do}, netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	mapped, err := ep.Discover(context.Background(), netip.AddrPortFrom(netip.MustParseAddr(srvIP), srvPort), 5*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", h.Name(), err)
	}
	cs, err := ep.Candidates(mapped)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: port %d, mapped %v, candidates %v", h.Name(), ep.Port(), mapped, cs)
	return &client{h: h, ep: ep, cs: cs}, mapped
}

// punch runs both sides, the owner starting skew after the visitor.
func punch(t *testing.T, v, o *client, timeout, skew time.Duration, carrier tcppunch.CarrierConfig) (vc, oc *tcppunch.Carrier, verr, oerr error) {
	key := make([]byte, xtcp.KeySize)
	for i := range key {
		key[i] = byte(i * 7)
	}
	id := xtcp.NewSessionID()
	start := time.Now().Add(100 * time.Millisecond)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		vc, verr = tcppunch.Punch(context.Background(), v.ep, tcppunch.Config{Key: key, SessionID: id, Role: xtcp.RoleVisitor,
			Remote: o.cs, StartAt: start, Timeout: timeout, Carrier: carrier})
	}()
	go func() {
		defer wg.Done()
		oc, oerr = tcppunch.Punch(context.Background(), o.ep, tcppunch.Config{Key: key, SessionID: id, Role: xtcp.RoleOwner,
			Remote: v.cs, StartAt: start.Add(skew), Timeout: timeout, Carrier: carrier})
	}()
	wg.Wait()
	for _, c := range []*tcppunch.Carrier{vc, oc} {
		if c != nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	return
}

// bulk sends n bytes in packets of 1300 from a to b, with a window so that
// no queue overflows (b acknowledges every 64 packets), and returns the
// SHA-256 of what was sent and of what arrived.
func bulk(t *testing.T, a, b *tcppunch.Carrier, n int) (sent, got [32]byte) {
	const size, ackEvery, window = 1300, 64, 256
	total := (n + size - 1) / size
	acked := make(chan uint64, 1024)
	recvDone := make(chan error, 1)
	hr := sha256.New()
	go func() { // receiver
		buf := make([]byte, tcppunch.MaxPacket)
		for i := 1; i <= total; i++ {
			k, err := b.RecvPacket(buf)
			if err != nil {
				recvDone <- fmt.Errorf("packet %d: %w", i, err)
				return
			}
			hr.Write(buf[:k])
			if i%ackEvery == 0 || i == total {
				b.SendPacket(binary.BigEndian.AppendUint64(nil, uint64(i)))
			}
		}
		recvDone <- nil
	}()
	go func() { // acks
		buf := make([]byte, 64)
		for {
			k, err := a.RecvPacket(buf)
			if err != nil || k != 8 {
				close(acked)
				return
			}
			acked <- binary.BigEndian.Uint64(buf)
		}
	}()
	hs := sha256.New()
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	pkt := make([]byte, size)
	var ack uint64
	for i := 1; i <= total; i++ {
		for uint64(i)-ack > window {
			select {
			case v, ok := <-acked:
				if !ok {
					t.Fatalf("acks ended at %d: %v", ack, a.Err())
				}
				ack = v
			case <-time.After(30 * time.Second):
				t.Fatalf("no ack after %d of %d packets", ack, total)
			}
		}
		k := min(size, n-(i-1)*size)
		for j := range pkt[:k] {
			pkt[j] = byte(rng.Uint32())
		}
		hs.Write(pkt[:k])
		if err := a.SendPacket(pkt[:k]); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-recvDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("receiver did not finish")
	}
	copy(sent[:], hs.Sum(nil))
	copy(got[:], hr.Sum(nil))
	return sent, got
}

// TestNetlabDropUDP: two clients behind port-preserving NATs that drop all
// forwarded UDP punch a TCP path through both NATs, 10 MB of packets
// cross it intact, and the server's counters show the bulk never reached
// hops. Behind a NAT that maps every destination to a new port (nat3) the
// punch fails within its timeout, with a clear error.
func TestNetlabDropUDP(t *testing.T) {
	lab := netlab.New(t)
	wan := lab.Network("wan", "198.51.100.0/24")
	lan1 := lab.Network("lan1", "10.1.0.0/24")
	lan2 := lab.Network("lan2", "10.2.0.0/24")
	lan3 := lab.Network("lan3", "10.3.0.0/24")
	srv := lab.Host("srv")
	srv.Attach(wan, srvIP)
	nat1 := lab.NAT("nat1", wan, nat1WAN, lan1, "10.1.0.1", netlab.NATConfig{Mode: netlab.PortPreserving, DropUDP: true})
	// nat2 also drops packets conntrack calls invalid: the simultaneous
	// open must be valid TCP to it.
	lab.NAT("nat2", wan, nat2WAN, lan2, "10.2.0.1", netlab.NATConfig{Mode: netlab.PortPreserving, DropUDP: true, DropInvalid: true})
	lab.NAT("nat3", wan, nat3WAN, lan3, "10.3.0.1", netlab.NATConfig{Mode: netlab.RandomPort, DropUDP: true})
	hosts := map[string]*netlab.Host{}
	for i, name := range []string{"c1", "c2", "c3"} {
		h := lab.Host(name)
		h.Attach(map[int]*netlab.Network{0: lan1, 1: lan2, 2: lan3}[i], fmt.Sprintf("10.%d.0.10", i+1))
		h.DefaultRoute(fmt.Sprintf("10.%d.0.1", i+1))
		hosts[name] = h
	}
	startHops(t, srv)
	srvCount := addCounters(t, srv, map[string]string{
		"in":     "input meta l4proto tcp",
		"out":    "output meta l4proto tcp",
		"udp_in": "input meta l4proto udp",
	})
	natCount := addCounters(t, nat1.Host, map[string]string{"to_nat2": "forward ip daddr " + nat2WAN})

	// UDP from c1 to hops is dropped by nat1: nothing arrives.
	if err := hosts["c1"].Do(func() error {
		c, err := net.Dial("udp4", net.JoinHostPort(srvIP, strconv.Itoa(srvPort)))
		if err != nil {
			return err
		}
		defer c.Close()
		for range 5 {
			c.Write(make([]byte, 128))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	c1, m1 := prepare(t, hosts["c1"]) // after the UDP: the TCP took the same wire
	c2, m2 := prepare(t, hosts["c2"])
	// The counters count: the STUN exchanges over TCP crossed them.
	if in, out := srvCount.bytes(t, "in"), srvCount.bytes(t, "out"); in == 0 || out == 0 {
		t.Fatalf("hops' counters saw %d bytes in and %d out for two STUN exchanges over TCP", in, out)
	}
	if got := srvCount.bytes(t, "udp_in"); got != 0 {
		t.Fatalf("hops received %d bytes of UDP through a DropUDP NAT", got)
	}
	if m1.Addr().String() != nat1WAN || m1.Port() != c1.ep.Port() || m2.Addr().String() != nat2WAN || m2.Port() != c2.ep.Port() {
		t.Fatalf("mapped %v and %v, want the NATs' WAN addresses with the ports kept", m1, m2)
	}

	t.Run("port-preserving", func(t *testing.T) {
		in0, out0, nat0 := srvCount.bytes(t, "in"), srvCount.bytes(t, "out"), natCount.bytes(t, "to_nat2")
		start := time.Now()
		v, o, verr, oerr := punch(t, c1, c2, 10*time.Second, 0,
			tcppunch.CarrierConfig{KeepaliveInterval: 200 * time.Millisecond, KeepaliveTimeout: 5 * time.Second})
		if verr != nil || oerr != nil {
			t.Fatalf("punch: visitor %v, owner %v", verr, oerr)
		}
		t.Logf("punched in %v: visitor %v→%v (%v, accepted %v), owner %v→%v (%v, accepted %v)", time.Since(start).Round(time.Millisecond),
			v.LocalAddr(), v.RemoteAddr(), v.Path(), v.Accepted(), o.LocalAddr(), o.RemoteAddr(), o.Path(), o.Accepted())
		// The keepalive runs on the same 5-tuple through both NATs.
		deadline := time.Now().Add(10 * time.Second)
		for v.RTT() == 0 || o.RTT() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("no keepalive round trip over the punched path")
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("keepalive RTT: visitor %v, owner %v", v.RTT(), o.RTT())
		if v.RemoteAddr().String() != m2.String() || o.RemoteAddr().String() != m1.String() {
			t.Errorf("path not through the NATs' mappings: visitor to %v, owner to %v", v.RemoteAddr(), o.RemoteAddr())
		}
		bstart := time.Now()
		sent, got := bulk(t, v, o, bulkSize)
		if sent != got {
			t.Fatal("the bulk arrived altered")
		}
		el := time.Since(bstart)
		in, out, nat := srvCount.bytes(t, "in")-in0, srvCount.bytes(t, "out")-out0, natCount.bytes(t, "to_nat2")-nat0
		t.Logf("10 MB intact in %v; hops TCP bytes in %d, out %d; nat1 forwarded %d bytes to nat2; visitor %+v, owner %+v",
			el.Round(time.Millisecond), in, out, nat, v.Stats(), o.Stats())
		if in+out > 64<<10 {
			t.Errorf("hops saw %d bytes during the punch and bulk: the bulk crossed it", in+out)
		}
		if nat < bulkSize {
			t.Errorf("nat1 forwarded only %d bytes to nat2, less than the bulk", nat)
		}
		if err := v.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-o.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("owner did not see the close")
		}
		if !errors.Is(o.Err(), tcppunch.ErrPeerClosed) {
			t.Errorf("owner ended with %v, want ErrPeerClosed", o.Err())
		}
	})

	// The owner starts 1.5 s late: the visitor's first SYNs die at nat2,
	// its retries (or the owner's SYN through the mapping they opened)
	// still meet.
	t.Run("skewed-start", func(t *testing.T) {
		a, _ := prepare(t, hosts["c1"])
		b, _ := prepare(t, hosts["c2"])
		v, o, verr, oerr := punch(t, a, b, 10*time.Second, 1500*time.Millisecond, tcppunch.CarrierConfig{})
		if verr != nil || oerr != nil {
			t.Fatalf("punch: visitor %v, owner %v", verr, oerr)
		}
		t.Logf("visitor %v→%v accepted %v; owner %v→%v accepted %v", v.LocalAddr(), v.RemoteAddr(), v.Accepted(), o.LocalAddr(), o.RemoteAddr(), o.Accepted())
		if err := v.SendPacket([]byte("late")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 16)
		if n, err := o.RecvPacket(buf); err != nil || string(buf[:n]) != "late" {
			t.Fatalf("%q %v", buf[:n], err)
		}
	})

	t.Run("symmetric", func(t *testing.T) {
		c3, m3 := prepare(t, hosts["c3"])
		if m3.Port() == c3.ep.Port() {
			t.Logf("nat3 kept port %d this time (random draws can)", m3.Port())
		}
		c1b, _ := prepare(t, hosts["c1"])
		const timeout = 3 * time.Second
		start := time.Now()
		v, o, verr, oerr := punch(t, c1b, c3, timeout, 0, tcppunch.CarrierConfig{})
		el := time.Since(start)
		if v != nil || o != nil {
			t.Fatalf("punched through a random-port NAT: %v %v", v, o)
		}
		for side, err := range map[string]error{"visitor": verr, "owner": oerr} {
			t.Logf("%s: %v", side, err)
			if !errors.Is(err, tcppunch.ErrTimeout) {
				t.Errorf("%s: %v, want ErrTimeout", side, err)
			}
		}
		if el > timeout+3*time.Second {
			t.Errorf("failed after %v, timeout %v", el, timeout)
		}
	})
}
