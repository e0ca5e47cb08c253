package nat

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/xtcp/stunserver"
	"github.com/pion/stun/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	lo1 = netip.MustParseAddr("127.0.0.1")
	lo2 = netip.MustParseAddr("127.0.0.2")
)

// fast are short Options for tests where silence is expected.
var fast = Options{Tries: 2, Interval: 100 * time.Millisecond}

// startServer runs a stunserver on 127.0.0.1 with an alternate port if
// altPort and 127.0.0.2 as alternate address if altAddr.
func startServer(t *testing.T, altPort, altAddr bool) *stunserver.Server {
	t.Helper()
	var err error
	for range 5 {
		cfg := stunserver.Config{Primary: netip.AddrPortFrom(lo1, 0)}
		if altPort {
			cfg.AltPort = freePort(t)
		}
		if altAddr {
			cfg.AltAddr = lo2
		}
		var s *stunserver.Server
		if s, err = stunserver.Listen(cfg); err == nil {
			t.Cleanup(func() { s.Close() })
			return s
		}
	}
	t.Fatalf("stunserver.Listen: %v", err)
	return nil
}

func freePort(t *testing.T) uint16 {
	c := listen(t, "127.0.0.1:0")
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Port()
}

func listen(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func local(c net.PacketConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

func discover(t *testing.T, conn net.PacketConn, server netip.AddrPort, opts Options) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	r, err := Discover(ctx, conn, server, opts)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	t.Logf("%s %+v\n%s", r.Class(), r, r.Explain())
	return r
}

// checkUsable checks that conn still works after Discover and has no read
// deadline left: a datagram sent to it can be read without setting one.
func checkUsable(t *testing.T, conn net.PacketConn) {
	t.Helper()
	peer := listen(t, "127.0.0.1:0")
	if _, err := peer.WriteToUDPAddrPort([]byte("after"), netip.AddrPortFrom(lo1, local(conn).Port())); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatalf("reading after Discover: %v", err)
		}
		if addrPort(from) == local(peer) && string(buf[:n]) == "after" {
			return
		}
	}
}

func TestDiscoverLoopbackFull(t *testing.T) {
	s := startServer(t, true, true)
	conn := listen(t, "127.0.0.1:0")
	r := discover(t, conn, s.Addrs()[0], Options{})
	if r.Behind() || r.Mapped != local(conn) || !r.PortPreserved || r.LocalAddr != local(conn) {
		t.Errorf("want no NAT: mapped %v, local %v, preserved %v", r.Mapped, r.LocalAddr, r.PortPreserved)
	}
	if r.Mapping != EndpointIndependent || r.MappingNote != "" || r.Filtering != EndpointIndependent || r.FilteringNote != "" {
		t.Errorf("got %v %q / %v %q, want EIM/EIF without notes", r.Mapping, r.MappingNote, r.Filtering, r.FilteringNote)
	}
	if r.Other != s.Other() || len(r.Probes) != 4 || !slices.Equal(r.Deltas, []int{0, 0, 0}) {
		t.Errorf("other %v (server %v), probes %v, deltas %v", r.Other, s.Other(), r.Probes, r.Deltas)
	}
	for i, p := range r.Probes {
		if p.To != s.Addrs()[i] || p.Mapped != local(conn) {
			t.Errorf("probe %d: %+v, want to %v", i, p, s.Addrs()[i])
		}
	}
	if got := r.PredictPorts(5); !slices.Equal(got, []uint16{local(conn).Port()}) {
		t.Errorf("PredictPorts = %v", got)
	}
	if r.Class() != "EIM/EIF" || !strings.Contains(r.Explain(), "No NAT") {
		t.Errorf("Class %q, Explain:\n%s", r.Class(), r.Explain())
	}
	checkUsable(t, conn)
}

// SkipFiltering still tests the mapping against every endpoint but sends
// no CHANGE-REQUEST.
func TestDiscoverSkipFiltering(t *testing.T) {
	s := startServer(t, true, true)
	conn := listen(t, "127.0.0.1:0")
	r := discover(t, conn, s.Addrs()[0], Options{SkipFiltering: true})
	if r.Mapping != EndpointIndependent || r.Filtering != Unknown || !strings.Contains(r.FilteringNote, "SkipFiltering") {
		t.Errorf("got %v / %v %q", r.Mapping, r.Filtering, r.FilteringNote)
	}
	if len(r.Probes) != 4 || r.Class() != "EIM/?F" {
		t.Errorf("probes %v, class %s", r.Probes, r.Class())
	}
	checkUsable(t, conn)
}

func TestDiscoverLoopbackAltPortOnly(t *testing.T) {
	s := startServer(t, true, false)
	conn := listen(t, "127.0.0.1:0")
	r := discover(t, conn, s.Addrs()[0], Options{})
	if r.Behind() || r.Mapping != EndpointIndependent || r.Filtering != AddressDependent {
		t.Errorf("got behind=%v %s", r.Behind(), r.Class())
	}
	if !strings.Contains(r.MappingNote, "no alternate address") || !strings.Contains(r.FilteringNote, "could also be endpoint-independent") {
		t.Errorf("notes %q / %q", r.MappingNote, r.FilteringNote)
	}
	if len(r.Probes) != 2 || r.Probes[1].To != s.Addrs()[1] {
		t.Errorf("probes %v", r.Probes)
	}
	checkUsable(t, conn)
}

func TestDiscoverLoopbackPrimaryOnly(t *testing.T) {
	s := startServer(t, false, false)
	conn := listen(t, "127.0.0.1:0")
	r := discover(t, conn, s.Addrs()[0], Options{})
	if r.Behind() || r.Mapping != Unknown || r.Filtering != Unknown || r.Other.IsValid() {
		t.Errorf("got behind=%v %s other %v", r.Behind(), r.Class(), r.Other)
	}
	if !strings.Contains(r.MappingNote, "no OTHER-ADDRESS") || !strings.Contains(r.FilteringNote, "no OTHER-ADDRESS") {
		t.Errorf("notes %q / %q", r.MappingNote, r.FilteringNote)
	}
	if r.PredictPorts(3) != nil {
		t.Errorf("PredictPorts = %v", r.PredictPorts(3))
	}
}

// TestDiscoverUnspecifiedLocal binds the client to 0.0.0.0: the local
// address comes from the route towards the server.
func TestDiscoverUnspecifiedLocal(t *testing.T) {
	s := startServer(t, true, true)
	conn := listen(t, "0.0.0.0:0")
	r := discover(t, conn, s.Addrs()[0], Options{})
	if want := netip.AddrPortFrom(lo1, local(conn).Port()); r.LocalAddr != want || r.Behind() {
		t.Errorf("LocalAddr %v, want %v; Behind %v", r.LocalAddr, want, r.Behind())
	}
}

func TestDiscoverNoServer(t *testing.T) {
	silentSrv := listen(t, "127.0.0.1:0") // reads nothing, answers nothing
	conn := listen(t, "127.0.0.1:0")
	start := time.Now()
	_, err := Discover(t.Context(), conn, local(silentSrv), fast)
	if !errors.Is(err, ErrNoResponse) {
		t.Fatalf("err = %v, want ErrNoResponse", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v for 2 tries of 100ms", d)
	}
	checkUsable(t, conn)
}

func TestDiscoverCancel(t *testing.T) {
	silentSrv := listen(t, "127.0.0.1:0")
	conn := listen(t, "127.0.0.1:0")
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := Discover(ctx, conn, local(silentSrv), Options{Tries: 3, Interval: 10 * time.Second})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancellation took %v", d)
	}
	checkUsable(t, conn)

	ctx, cancel = context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	if _, err := Discover(ctx, conn, local(silentSrv), Options{Interval: 10 * time.Second}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	checkUsable(t, conn)
}

func TestDiscoverBadArgs(t *testing.T) {
	conn := listen(t, "127.0.0.1:0")
	for _, o := range []Options{{Tries: -1}, {Interval: -time.Second}} {
		if _, err := Discover(t.Context(), conn, netip.MustParseAddrPort("127.0.0.1:3478"), o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v: err = %v", o, err)
		}
	}
	for _, s := range []netip.AddrPort{{}, netip.MustParseAddrPort("127.0.0.1:0"), netip.MustParseAddrPort("0.0.0.0:3478")} {
		if _, err := Discover(t.Context(), conn, s, Options{}); err == nil {
			t.Errorf("server %v accepted", s)
		}
	}
}

// fakeServer answers each request on one of its sockets with what reply
// returns: a list of datagrams, each sent from the socket given with it.
// All sockets exist before reply is first called.
type fakeServer struct {
	socks []*net.UDPConn
	wg    sync.WaitGroup
}

type datagram struct {
	from int // index into socks
	b    []byte
}

func newFake(t *testing.T, n int, reply func(f *fakeServer, in int, req *stun.Message, from netip.AddrPort) []datagram) *fakeServer {
	t.Helper()
	f := &fakeServer{}
	for range n {
		f.socks = append(f.socks, listen(t, "127.0.0.1:0"))
	}
	for i, c := range f.socks {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			buf := make([]byte, 1500)
			for {
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
				if m.Decode() != nil {
					continue
				}
				for _, d := range reply(f, i, m, from) {
					f.socks[d.from].WriteToUDPAddrPort(d.b, from)
				}
			}
		}()
	}
	t.Cleanup(func() {
		for _, c := range f.socks {
			c.Close()
		}
		f.wg.Wait()
	})
	return f
}

func (f *fakeServer) addr(i int) netip.AddrPort { return local(f.socks[i]) }

func success(t *testing.T, req *stun.Message, from netip.AddrPort, extra ...stun.Setter) []byte {
	m, err := stun.Build(append([]stun.Setter{stun.BindingSuccess, stun.NewTransactionIDSetter(req.TransactionID),
		&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())}}, extra...)...)
	if err != nil {
		t.Error(err)
	}
	return m.Raw
}

// TestDiscoverIgnoresNoise has a server that sends garbage, a response to
// another transaction and a request before each real answer.
func TestDiscoverIgnoresNoise(t *testing.T) {
	f := newFake(t, 2, func(f *fakeServer, in int, req *stun.Message, from netip.AddrPort) []datagram {
		other := req.TransactionID
		other[0] ^= 0xff
		wrongTx := &stun.Message{TransactionID: other}
		return []datagram{
			{in, []byte("garbage")},
			{in, success(t, wrongTx, netip.MustParseAddrPort("192.0.2.99:1"))},
			{in, stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw},
			{in, success(t, req, from, &stun.OtherAddress{IP: lo1.AsSlice(), Port: int(f.addr(1 - in).Port())})},
		}
	})
	conn := listen(t, "127.0.0.1:0")
	r := discover(t, conn, f.addr(0), fast)
	if r.Mapped != local(conn) || r.Mapping != EndpointIndependent || len(r.Probes) != 2 {
		t.Errorf("got %+v", r)
	}
	// The fake ignores CHANGE-REQUEST: that must not pass for a result.
	if r.Filtering != Unknown || !strings.Contains(r.FilteringNote, "ignored") {
		t.Errorf("filtering %v %q, want Unknown because the server ignored CHANGE-REQUEST", r.Filtering, r.FilteringNote)
	}
}

func TestDiscoverRefused(t *testing.T) {
	f := newFake(t, 1, func(_ *fakeServer, in int, req *stun.Message, from netip.AddrPort) []datagram {
		m := stun.MustBuild(stun.BindingError, stun.NewTransactionIDSetter(req.TransactionID),
			stun.ErrorCodeAttribute{Code: 400, Reason: []byte("go away")})
		return []datagram{{in, m.Raw}}
	})
	conn := listen(t, "127.0.0.1:0")
	_, err := Discover(t.Context(), conn, f.addr(0), fast)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), `400 "go away"`) {
		t.Fatalf("err = %v, want ErrRefused with the code", err)
	}
}

// TestDiscoverSymmetricFake has a server that reports a new public port for
// each of its sockets, as a symmetric NAT in sequence would look.
func TestDiscoverSymmetricFake(t *testing.T) {
	f := newFake(t, 2, func(f *fakeServer, in int, req *stun.Message, from netip.AddrPort) []datagram {
		seen := netip.AddrPortFrom(netip.MustParseAddr("203.0.113.5"), uint16(40000+in))
		if req.Contains(stun.AttrChangeRequest) {
			return nil // filters everything
		}
		return []datagram{{in, success(t, req, seen, &stun.OtherAddress{IP: lo1.AsSlice(), Port: int(f.addr(1 - in).Port())})}}
	})
	conn := listen(t, "127.0.0.1:0")
	r := discover(t, conn, f.addr(0), fast)
	if !r.Behind() || r.PortPreserved || r.Mapping != AddressAndPortDependent || r.Filtering != AddressAndPortDependent {
		t.Errorf("got behind=%v preserved=%v %s", r.Behind(), r.PortPreserved, r.Class())
	}
	if !slices.Equal(r.Deltas, []int{1}) || !slices.Equal(r.PredictPorts(2), []uint16{40002, 40003}) {
		t.Errorf("deltas %v, prediction %v", r.Deltas, r.PredictPorts(2))
	}
}

// TestDiscoverClearsCallerDeadline checks that a deadline the caller had set
// neither disturbs Discover nor survives it.
func TestDiscoverClearsCallerDeadline(t *testing.T) {
	s := startServer(t, true, false)
	conn := listen(t, "127.0.0.1:0")
	conn.SetReadDeadline(time.Now().Add(-time.Second))
	discover(t, conn, s.Addrs()[0], fast)
	checkUsable(t, conn)
	conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, _, err := conn.ReadFrom(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}
