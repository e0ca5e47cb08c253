package xtcp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

func TestPunchLoopback(t *testing.T) {
	checkLeaks(t)
	oconn, vconn := listen(t), listen(t)
	sid := NewSessionID()
	// A dead candidate listed first on both sides: the live one must win.
	oc := testPunchConfig(sid, RoleOwner, host(deadPort(t)), host(addrOf(vconn)))
	vc := testPunchConfig(sid, RoleVisitor, host(deadPort(t)), host(addrOf(oconn)))
	o, v := punchBoth(context.Background(), oconn, vconn, oc, vc)
	if o.err != nil || v.err != nil {
		t.Fatalf("owner: %v\nvisitor: %v", o.err, v.err)
	}
	if o.res.Remote != addrOf(vconn) || v.res.Remote != addrOf(oconn) {
		t.Fatalf("disagree: owner uses %v (visitor is %v), visitor uses %v (owner is %v)",
			o.res.Remote, addrOf(vconn), v.res.Remote, addrOf(oconn))
	}
	if o.res.Kind != PathLAN || o.res.Candidate.Kind != Host || o.res.RTT <= 0 {
		t.Fatalf("owner result %+v", o.res)
	}
	for _, r := range []*PunchResult{o.res, v.res} {
		if r.PacketsSent == 0 || r.PacketsSent > oc.MaxPackets {
			t.Fatalf("sent %d packets", r.PacketsSent)
		}
	}
	t.Logf("owner %+v\nvisitor %+v", *o.res, *v.res)
	assertNoDeadline(t, oconn)
}

// assertNoDeadline checks that Punch cleared the read deadline.
func assertNoDeadline(t *testing.T, c *net.UDPConn) {
	t.Helper()
	probe := listen(t)
	go probe.WriteToUDPAddrPort([]byte("x"), addrOf(c))
	buf := make([]byte, 16)
	done := make(chan error, 1)
	go func() {
		for {
			n, _, err := c.ReadFromUDP(buf)
			if err != nil || string(buf[:n]) == "x" {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("read after Punch: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("read after Punch: nothing")
	}
}

func TestPunchPeerReflexive(t *testing.T) {
	checkLeaks(t)
	oconn, vconn := listen(t), listen(t)
	sid := NewSessionID()
	// The owner knows no working address of the visitor: it must learn it
	// from the visitor's probes.
	o, v := punchBoth(context.Background(), oconn, vconn,
		testPunchConfig(sid, RoleOwner, host(deadPort(t))),
		testPunchConfig(sid, RoleVisitor, host(addrOf(oconn))))
	if o.err != nil || v.err != nil {
		t.Fatalf("owner: %v\nvisitor: %v", o.err, v.err)
	}
	if o.res.Remote != addrOf(vconn) || o.res.Candidate.Kind != PeerReflexive {
		t.Fatalf("owner result %+v", o.res)
	}
}

func TestPunchWrongKey(t *testing.T) {
	checkLeaks(t)
	oconn, vconn := listen(t), listen(t)
	sid := NewSessionID()
	oc := testPunchConfig(sid, RoleOwner, host(addrOf(vconn)))
	vc := testPunchConfig(sid, RoleVisitor, host(addrOf(oconn)))
	vc.Key = []byte("not the owner's attempt key, 32b")
	oc.Timeout, vc.Timeout = 300*time.Millisecond, 300*time.Millisecond
	o, v := punchBoth(context.Background(), oconn, vconn, oc, vc)
	for _, out := range []punchOutcome{o, v} {
		var pe *PunchError
		if !errors.As(out.err, &pe) {
			t.Fatalf("got %v, want a *PunchError", out.err)
		}
		if !errors.Is(out.err, ErrPunchTimeout) || pe.Reason != PeerPacketsRejected ||
			!errors.Is(pe.LastRejection, ErrBadMAC) || pe.PeerPackets != 0 || pe.Rejected == 0 {
			t.Fatalf("%+v", pe)
		}
		t.Log(out.err)
	}
}

func TestPunchSameRole(t *testing.T) {
	checkLeaks(t)
	a, b := listen(t), listen(t)
	sid := NewSessionID()
	ac := testPunchConfig(sid, RoleOwner, host(addrOf(b)))
	bc := testPunchConfig(sid, RoleOwner, host(addrOf(a)))
	ac.Timeout, bc.Timeout = 200*time.Millisecond, 200*time.Millisecond
	o, _ := punchBoth(context.Background(), a, b, ac, bc)
	var pe *PunchError
	if !errors.As(o.err, &pe) || !errors.Is(pe.LastRejection, ErrReflected) {
		t.Fatalf("got %v", o.err)
	}
}

// sink counts the packets that reach a socket.
func sink(t *testing.T) (*net.UDPConn, *atomic.Int64) {
	c := listen(t)
	var n atomic.Int64
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
			n.Add(1)
		}
	}()
	return c, &n
}

func TestPunchNoPeerBounded(t *testing.T) {
	checkLeaks(t)
	conn := listen(t)
	s1, n1 := sink(t)
	s2, n2 := sink(t)
	cfg := testPunchConfig(NewSessionID(), RoleVisitor, host(addrOf(s1)), host(addrOf(s2)))
	cfg.MaxPackets = 40
	cfg.Interval = time.Millisecond
	cfg.Timeout = 500 * time.Millisecond
	start := time.Now()
	_, err := Punch(context.Background(), conn, cfg)
	var pe *PunchError
	if !errors.As(err, &pe) || pe.Reason != NoPeerPackets || !errors.Is(err, ErrPunchTimeout) {
		t.Fatalf("got %v", err)
	}
	if el := time.Since(start); el < cfg.Timeout || el > cfg.Timeout+time.Second {
		t.Fatalf("took %v, timeout %v", el, cfg.Timeout)
	}
	time.Sleep(50 * time.Millisecond) // let the sinks read the last ones
	got := n1.Load() + n2.Load()
	if got > int64(cfg.MaxPackets) || pe.PacketsSent > cfg.MaxPackets || int64(pe.PacketsSent) != got {
		t.Fatalf("sinks got %d packets, Punch says %d, bound %d", got, pe.PacketsSent, cfg.MaxPackets)
	}
	if d := n1.Load() - n2.Load(); d < -1 || d > 1 {
		t.Fatalf("not round-robin: %d vs %d", n1.Load(), n2.Load())
	}
	t.Log(err)
}

func TestPunchRateBound(t *testing.T) {
	checkLeaks(t)
	conn := listen(t)
	s, n := sink(t)
	cfg := testPunchConfig(NewSessionID(), RoleVisitor, host(addrOf(s)))
	cfg.Interval = time.Millisecond
	cfg.MaxRate = 100
	cfg.MaxPackets = 1000
	cfg.Timeout = 300 * time.Millisecond
	Punch(context.Background(), conn, cfg)
	// 100/s for 0.3 s: about 30, and the first goes at once.
	if got := n.Load(); got > 32 || got < 10 {
		t.Fatalf("%d packets in %v at %d/s", got, cfg.Timeout, cfg.MaxRate)
	}
}

func TestPunchCanceled(t *testing.T) {
	checkLeaks(t)
	conn := listen(t)
	s, _ := sink(t)
	cfg := testPunchConfig(NewSessionID(), RoleOwner, host(addrOf(s)))
	cfg.Timeout = 10 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := Punch(ctx, conn, cfg)
	var pe *PunchError
	if !errors.As(err, &pe) || pe.Reason != Canceled || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("cancel took %v", el)
	}
	assertNoDeadline(t, conn)

	// Canceled while waiting for StartAt.
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	cfg.StartAt = time.Now().Add(time.Hour)
	if _, err := Punch(ctx, conn, cfg); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}

func TestPunchStartAt(t *testing.T) {
	checkLeaks(t)
	oconn, vconn := listen(t), listen(t)
	sid := NewSessionID()
	start := time.Now().Add(150 * time.Millisecond)
	oc := testPunchConfig(sid, RoleOwner, host(addrOf(vconn)))
	vc := testPunchConfig(sid, RoleVisitor, host(addrOf(oconn)))
	oc.StartAt, vc.StartAt = start, start
	o, v := punchBoth(context.Background(), oconn, vconn, oc, vc)
	if o.err != nil || v.err != nil {
		t.Fatalf("owner: %v\nvisitor: %v", o.err, v.err)
	}
	if time.Now().Before(start) {
		t.Fatal("done before StartAt")
	}
}

func TestPunchConfigErrors(t *testing.T) {
	conn := listen(t)
	good := testPunchConfig(NewSessionID(), RoleOwner, host(deadPort(t)))
	for name, mod := range map[string]func(*PunchConfig){
		"no key":        func(c *PunchConfig) { c.Key = nil },
		"zero session":  func(c *PunchConfig) { c.SessionID = SessionID{} },
		"no role":       func(c *PunchConfig) { c.Role = 0 },
		"no candidates": func(c *PunchConfig) { c.Remote = nil },
		"negative":      func(c *PunchConfig) { c.Interval = -1 },
	} {
		c := good
		mod(&c)
		if _, err := Punch(context.Background(), conn, c); err == nil {
			t.Errorf("%s: accepted", name)
		} else if pe := (*PunchError)(nil); errors.As(err, &pe) {
			t.Errorf("%s: a config error is not a PunchError: %v", name, err)
		}
	}
}

func TestPunchIPv6(t *testing.T) {
	checkLeaks(t)
	listen6 := func() *net.UDPConn {
		c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
		if err != nil {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	oconn, vconn := listen6(), listen6()
	sid := NewSessionID()
	// An IPv4 candidate on an IPv6-only socket fails to send and is skipped.
	o, v := punchBoth(t.Context(), oconn, vconn,
		testPunchConfig(sid, RoleOwner, host(deadPort(t)), host(addrOf(vconn))),
		testPunchConfig(sid, RoleVisitor, host(addrOf(oconn))))
	if o.err != nil || v.err != nil {
		t.Fatalf("owner: %v\nvisitor: %v", o.err, v.err)
	}
	if o.res.Remote != addrOf(vconn) || v.res.Remote != addrOf(oconn) {
		t.Fatalf("owner %v visitor %v", o.res.Remote, v.res.Remote)
	}
}

// TestPunchOnlyUnsendable: none of the owner's candidates can even be sent
// to (IPv6 on an IPv4 socket); it must still succeed through the address
// the visitor's probes come from.
func TestPunchOnlyUnsendable(t *testing.T) {
	checkLeaks(t)
	oconn, vconn := listen(t), listen(t)
	v6 := Candidate{Addr: netip.MustParseAddrPort("[::1]:9"), Kind: Host}
	if _, err := oconn.WriteToUDPAddrPort([]byte("x"), v6.Addr); err == nil {
		t.Skip("this IPv4 socket can send to IPv6")
	}
	sid := NewSessionID()
	oc := testPunchConfig(sid, RoleOwner, v6)
	vc := testPunchConfig(sid, RoleVisitor, host(addrOf(oconn)))
	vc.StartAt = time.Now().Add(50 * time.Millisecond) // the owner's candidates die first
	o, v := punchBoth(t.Context(), oconn, vconn, oc, vc)
	if o.err != nil || v.err != nil {
		t.Fatalf("owner: %v\nvisitor: %v", o.err, v.err)
	}
	if o.res.Remote != addrOf(vconn) || o.res.Candidate.Kind != PeerReflexive {
		t.Fatalf("owner %+v", o.res)
	}
}

// TestPunchDeadCandidateLast: an unsendable candidate at the end of the
// list must not stop the rounds.
func TestPunchDeadCandidateLast(t *testing.T) {
	checkLeaks(t)
	conn := listen(t)
	s, n := sink(t)
	cfg := testPunchConfig(NewSessionID(), RoleOwner, host(addrOf(s)), Candidate{Addr: netip.MustParseAddrPort("[::1]:9"), Kind: Host})
	cfg.Timeout = 300 * time.Millisecond
	if _, err := Punch(t.Context(), conn, cfg); err == nil {
		t.Fatal("punched a sink")
	}
	time.Sleep(20 * time.Millisecond)
	// 5 ms rounds for 0.3 s.
	if got := n.Load(); got < 20 {
		t.Fatalf("only %d probes reached the live candidate", got)
	}
}

func TestSprayCandidates(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cfg, err := PunchConfig{Key: []byte("0123456789abcdef0123456789abcdef"), SessionID: NewSessionID(), Role: RoleOwner,
		Remote:  []Candidate{{Addr: netip.MustParseAddrPort("127.0.0.1:5000"), Kind: ServerReflexive}},
		SprayIP: netip.MustParseAddr("127.0.0.1"), SprayPorts: 300}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	ps := newPuncher(conn, cfg)
	if len(ps.cands) != 301 {
		t.Fatalf("%d candidates, want 1 listed + 300 sprayed", len(ps.cands))
	}
	seen := map[netip.AddrPort]bool{}
	for _, c := range ps.cands[1:] {
		if seen[c.Addr] || c.Addr.Port() < 1024 || c.Addr.Addr() != netip.MustParseAddr("127.0.0.1") {
			t.Fatalf("bad sprayed candidate %v", c)
		}
		seen[c.Addr] = true
	}
	if _, err := (PunchConfig{Key: []byte("0123456789abcdef0123456789abcdef"), SessionID: NewSessionID(), Role: RoleOwner,
		Remote: ps.cfg.Remote, SprayPorts: 10}).withDefaults(); err == nil {
		t.Fatal("spray without an address accepted")
	}
}

// PunchMany returns the socket whose round trip the owner selected and
// closes the others. (On loopback nothing filters, so any socket may win.)
func TestPunchMany(t *testing.T) {
	checkLeaks(t)
	oconn := listen(t)
	many := []*net.UDPConn{listen(t), listen(t), listen(t)}
	sid := NewSessionID()
	oc := testPunchConfig(sid, RoleOwner, host(addrOf(many[2])))
	vc := testPunchConfig(sid, RoleVisitor, host(addrOf(oconn)))
	vc.Timeout = 3 * time.Second
	type res struct {
		r   *PunchResult
		c   *net.UDPConn
		err error
	}
	done := make(chan res, 1)
	go func() {
		r, c, err := PunchMany(context.Background(), many, vc, 20*time.Millisecond)
		done <- res{r, c, err}
	}()
	if _, err := Punch(context.Background(), oconn, oc); err != nil {
		t.Fatalf("owner: %v", err)
	}
	got := <-done
	if got.err != nil || got.r.Remote != addrOf(oconn) {
		t.Fatalf("PunchMany = %+v, %v", got.r, got.err)
	}
	open := 0
	for _, c := range many {
		if _, err := c.WriteToUDPAddrPort([]byte("x"), addrOf(oconn)); err == nil {
			open++
			if c != got.c {
				t.Fatal("a losing socket was left open")
			}
		}
	}
	if open != 1 {
		t.Fatalf("%d sockets open after PunchMany, want the winner only", open)
	}
}
