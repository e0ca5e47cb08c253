package xtcp

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// kcp-go starts its timer goroutines at init and keeps them.
var leakOpts = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).sched"),
	goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).prepend"),
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leakOpts...) }

// checkLeaks fails t if goroutines started during the test outlive it.
func checkLeaks(t testing.TB) {
	opts := append([]goleak.Option{goleak.IgnoreCurrent()}, leakOpts...)
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

var testSecret = []byte("correct horse battery staple 32b") // an attempt key: KeySize bytes

// listen opens a UDP socket on loopback; the test closes it at the end
// unless something else already did.
func listen(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addrOf(c *net.UDPConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// deadPort returns a loopback address nobody listens on.
func deadPort(t testing.TB) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	a := addrOf(c)
	c.Close()
	return a
}

func host(a netip.AddrPort) Candidate { return Candidate{Addr: a, Kind: Host} }

// testPunchConfig returns fast settings for loopback.
func testPunchConfig(sid SessionID, role Role, remote ...Candidate) PunchConfig {
	return PunchConfig{
		Key:        testSecret,
		SessionID:  sid,
		Role:       role,
		Remote:     remote,
		Interval:   5 * time.Millisecond,
		MaxPackets: 200,
		MaxRate:    2000,
		Timeout:    3 * time.Second,
	}
}

type punchOutcome struct {
	res *PunchResult
	err error
}

// punchBoth runs both punches at once and returns (owner, visitor).
func punchBoth(ctx context.Context, owner, visitor *net.UDPConn, oc, vc PunchConfig) (punchOutcome, punchOutcome) {
	var wg sync.WaitGroup
	var o, v punchOutcome
	wg.Add(2)
	go func() { defer wg.Done(); o.res, o.err = Punch(ctx, owner, oc) }()
	go func() { defer wg.Done(); v.res, v.err = Punch(ctx, visitor, vc) }()
	wg.Wait()
	return o, v
}

// testSessionConfig has small keepalive intervals.
func testSessionConfig() SessionConfig {
	return SessionConfig{KeepaliveInterval: 100 * time.Millisecond, KeepaliveTimeout: 600 * time.Millisecond}
}

// kcpPair punches between two loopback sockets and starts an xtcp session
// on each. It returns (visitor, owner) and their sockets.
func kcpPair(t testing.TB, cfg SessionConfig) (vs, os *Session, vconn, oconn *net.UDPConn) {
	t.Helper()
	oconn, vconn = listen(t), listen(t)
	sid := NewSessionID()
	o, v := punchBoth(context.Background(), oconn, vconn,
		testPunchConfig(sid, RoleOwner, host(addrOf(vconn))),
		testPunchConfig(sid, RoleVisitor, host(addrOf(oconn))))
	if o.err != nil || v.err != nil {
		t.Fatalf("punch: owner %v, visitor %v", o.err, v.err)
	}
	var err error
	vs, err = DialKCP(vconn, v.res.Remote, testSecret, sid, cfg)
	if err != nil {
		t.Fatal(err)
	}
	os, err = AcceptKCP(oconn, o.res.Remote, testSecret, sid, cfg)
	if err != nil {
		vs.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { vs.Close(); os.Close() })
	return vs, os, vconn, oconn
}

// echoOnce has os echo the first stream it accepts, opens one from vs,
// sends msg on it and returns what comes back (within 15 s).
func echoOnce(vs, os *Session, msg []byte) ([]byte, error) {
	go func() {
		st, err := os.Accept()
		if err == nil {
			io.Copy(st, st)
			st.Close()
		}
	}()
	st, err := vs.Open()
	if err != nil {
		return nil, err
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := st.Write(msg); err != nil {
		return nil, err
	}
	buf := make([]byte, len(msg))
	n, err := io.ReadFull(st, buf)
	return buf[:n], err
}

// dialed is the outcome of visitorDial.
type dialed struct {
	s   *Session
	res *PunchResult
	err error
}

// visitorDial punches from conn with pc and, once a path is found, starts
// the visitor's session on it with cfg (DialKCP), in a goroutine; the
// outcome comes on the channel.
func visitorDial(ctx context.Context, conn *net.UDPConn, pc PunchConfig, cfg SessionConfig) <-chan dialed {
	ch := make(chan dialed, 1)
	go func() {
		res, err := Punch(ctx, conn, pc)
		if err != nil {
			ch <- dialed{err: err}
			return
		}
		s, err := DialKCP(conn, res.Remote, pc.Key, pc.SessionID, cfg)
		ch <- dialed{s, res, err}
	}()
	return ch
}
