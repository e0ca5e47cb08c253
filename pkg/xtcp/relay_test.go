package xtcp

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// relay forwards UDP between two peers on loopback, as a path in the
// middle that tests can make misbehave: a talks to relay.forA, b to
// relay.forB.
type relay struct {
	forA, forB *net.UDPConn
	a, b       netip.AddrPort
	// dropAbove drops packets longer than this (0: none); dup sends every
	// packet twice.
	dropAbove atomic.Int64
	dup       atomic.Bool
	// dropCtl drops every control packet of this type (0: none).
	dropCtl atomic.Int32
	// blackhole drops every packet.
	blackhole atomic.Bool
	// lose, if set before the first packet, decides for every packet
	// whether it is lost on the way; aToB says the direction. Each
	// direction is pumped by one goroutine.
	lose    func(aToB bool) bool
	dropped atomic.Int64
	wg      sync.WaitGroup
}

func newRelay(t *testing.T, a, b netip.AddrPort) *relay {
	return startRelay(t, &relay{forA: listen(t), forB: listen(t), a: a, b: b})
}

// startRelay starts r's pumps; r has its sockets and peers.
func startRelay(t *testing.T, r *relay) *relay {
	r.wg.Add(2)
	go r.pump(r.forA, r.forB, r.b)
	go r.pump(r.forB, r.forA, r.a)
	t.Cleanup(func() { r.forA.Close(); r.forB.Close(); r.wg.Wait() })
	return r
}

func (r *relay) pump(from, to *net.UDPConn, dst netip.AddrPort) {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, _, err := from.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if max := r.dropAbove.Load(); (max > 0 && int64(n) > max) || r.blackhole.Load() {
			continue
		}
		if typ := r.dropCtl.Load(); typ != 0 && isCtl(buf[:n]) && n == ctlLen && int32(buf[5]) == typ {
			r.dropped.Add(1)
			continue
		}
		if r.lose != nil && r.lose(dst == r.b) {
			r.dropped.Add(1)
			continue
		}
		to.WriteToUDPAddrPort(buf[:n], dst)
		if r.dup.Load() {
			to.WriteToUDPAddrPort(buf[:n], dst)
		}
	}
}

// relayedPair starts xtcp sessions that talk through a relay.
func relayedPair(t *testing.T, cfg SessionConfig) (vs, os *Session, r *relay) {
	vconn, oconn := listen(t), listen(t)
	r = newRelay(t, addrOf(vconn), addrOf(oconn))
	sid := NewSessionID()
	vs, err := DialKCP(vconn, addrOf(r.forA), testSecret, sid, cfg)
	if err != nil {
		t.Fatal(err)
	}
	os, err = AcceptKCP(oconn, addrOf(r.forB), testSecret, sid, cfg)
	if err != nil {
		vs.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { vs.Close(); os.Close() })
	return vs, os, r
}

// TestKCPDuplicates: a path that delivers every packet twice; the copies
// are dropped as replays and the data arrives intact.
func TestKCPDuplicates(t *testing.T) {
	checkLeaks(t)
	vs, os, r := relayedPair(t, testSessionConfig())
	r.dup.Store(true)
	got := make(chan [32]byte, 1)
	go func() {
		st, err := os.Accept()
		if err != nil {
			close(got)
			return
		}
		sum, _, _ := readDigest(st)
		got <- sum
	}()
	st, err := vs.Open()
	if err != nil {
		t.Fatal(err)
	}
	want, err := sendDigest(st, 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	if sum := <-got; sum != want {
		t.Fatal("digest mismatch")
	}
	if os.Stats().Rejected == 0 {
		t.Fatalf("no duplicate rejected: %+v", os.Stats())
	}
}

// TestKCPStall: a path that drops big packets (an MTU black hole) while
// keepalives pass. KCP would retransmit forever; the session must end
// with ErrPathDead instead.
func TestKCPStall(t *testing.T) {
	checkLeaks(t)
	cfg := testSessionConfig()
	vs, os, r := relayedPair(t, cfg)
	go func() {
		st, err := os.Accept()
		if err == nil {
			io.Copy(io.Discard, st)
		}
	}()
	st, err := vs.Open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	r.dropAbove.Store(200)
	start := time.Now()
	go func() {
		buf := make([]byte, 32<<10)
		for {
			if _, err := st.Write(buf); err != nil {
				return
			}
		}
	}()
	var first *Session
	select {
	case <-vs.Done():
		first = vs
	case <-os.Done():
		first = os
	case <-time.After(4 * cfg.KeepaliveTimeout):
		t.Fatalf("no end after %v: visitor %+v", time.Since(start), vs.Stats())
	}
	err = first.Err()
	if errors.Is(err, ErrPeerClosed) { // both had ended by the select: the other one saw the stall
		other := vs
		if first == vs {
			other = os
		}
		err = other.Err()
	}
	if !errors.Is(err, ErrPathDead) || !strings.Contains(err.Error(), "KCP delivers nothing") {
		t.Fatalf("got %v", err)
	}
	t.Logf("%v after %v", err, time.Since(start).Round(time.Millisecond))
}

// TestPunchLostConfirmation: every SelectedAck is lost. The visitor is
// done on Selected and starts its session; the owner takes the first
// keepalive of the visitor's path as the confirmation.
func TestPunchLostConfirmation(t *testing.T) {
	checkLeaks(t)
	vconn, oconn := listen(t), listen(t)
	r := newRelay(t, addrOf(vconn), addrOf(oconn))
	r.dropCtl.Store(int32(ctlSelectedAck))
	sid := NewSessionID()
	cfg := testSessionConfig()

	vch := visitorDial(t.Context(), vconn, testPunchConfig(sid, RoleVisitor, host(addrOf(r.forA))), cfg)
	ores, err := Punch(t.Context(), oconn, testPunchConfig(sid, RoleOwner, host(addrOf(r.forB))))
	if err != nil {
		t.Fatalf("owner: %v", err)
	}
	v := <-vch
	if v.err != nil {
		t.Fatalf("visitor: %v", v.err)
	}
	defer v.s.Close()
	if ores.Remote != addrOf(r.forB) || v.res.Remote != addrOf(r.forA) || r.dropped.Load() == 0 {
		t.Fatalf("owner uses %v, visitor %v, %d SelectedAcks dropped", ores.Remote, v.res.Remote, r.dropped.Load())
	}
	os, err := AcceptKCP(oconn, ores.Remote, testSecret, sid, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Close()
	if got, err := echoOnce(v.s, os, []byte("ping")); err != nil || string(got) != "ping" {
		t.Fatalf("%q %v", got, err)
	}
}
