package xtcp

import (
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/seal"
)

// recordPair is two ends of a sealed stream over loopback TCP: what the
// server's relay gives a visitor and an owner.
func recordPair(t testing.TB) (v, o *seal.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-acc
	if b == nil {
		t.Fatal("accept failed")
	}
	isk := make([]byte, 32)
	vs, vr := seal.Keys(isk, "test relay", true)
	os, or := seal.Keys(isk, "test relay", false)
	if v, err = seal.New(a, vs, vr); err != nil {
		t.Fatal(err)
	}
	if o, err = seal.New(b, os, or); err != nil {
		t.Fatal(err)
	}
	return v, o
}

// linkPair starts an xtcp session on each end of a link pair that has a
// relay carrier.
var lastRelayCarrier *StreamCarrier

func linkPair(t testing.TB, lc LinkConfig) (vs, os *Session) {
	t.Helper()
	vl, err := NewLink(lc)
	if err != nil {
		t.Fatal(err)
	}
	ol, err := NewLink(lc)
	if err != nil {
		t.Fatal(err)
	}
	rv, ro := recordPair(t)
	lastRelayCarrier = NewStreamCarrier(rv, 0)
	vl.Attach(CarrierRelay, lastRelayCarrier)
	ol.Attach(CarrierRelay, NewStreamCarrier(ro, 0))
	if vs, err = NewLinkSession(vl, RoleVisitor, 7, testSessionConfig()); err != nil {
		t.Fatal(err)
	}
	if os, err = NewLinkSession(ol, RoleOwner, 7, testSessionConfig()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vs.Close(); os.Close() })
	return vs, os
}

// attachUDP punches nothing: it gives both links a UDP carrier through a
// relay that the test can black-hole.
func attachUDP(t testing.TB, vs, os *Session) *relay {
	t.Helper()
	vconn, oconn := listen(t), listen(t)
	r := newRelay(t.(*testing.T), addrOf(vconn), addrOf(oconn))
	sid := NewSessionID()
	// Keepalives well past the test's stall threshold (200 ms): the
	// carriers must not die of a loaded machine's pauses, only go unused
	// while black-holed.
	cfg := SessionConfig{KeepaliveInterval: 100 * time.Millisecond, KeepaliveTimeout: 10 * time.Second}
	vc, err := NewUDPCarrier(vconn, addrOf(r.forA), testSecret, sid, RoleVisitor, PayloadKCP, cfg)
	if err != nil {
		t.Fatal(err)
	}
	oc, err := NewUDPCarrier(oconn, addrOf(r.forB), testSecret, sid, RoleOwner, PayloadKCP, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := vs.Link().Attach(CarrierUDP, vc); err != nil {
		t.Fatal(err)
	}
	if err := os.Link().Attach(CarrierUDP, oc); err != nil {
		t.Fatal(err)
	}
	return r
}

func carrierBytes(l *Link, k CarrierKind) uint64 {
	for _, c := range l.Stats().Carriers {
		if c.Kind == k {
			return c.BytesSent
		}
	}
	return 0
}

// TestLinkUpgradeDowngrade: one stream carries 24 MB while its link starts
// on the relay, gains a direct UDP carrier after 4 MB, and loses it (black
// hole) after 12 MB. The bytes arrive intact, the stream is never reset,
// the middle part goes direct and the last part over the relay again.
func TestLinkUpgradeDowngrade(t *testing.T) {
	checkLeaks(t)
	var switches atomic.Int32
	vs, os := linkPair(t, LinkConfig{StallAfter: 200 * time.Millisecond, Linger: 10 * time.Second,
		OnSwitch: func(from, to CarrierKind) { switches.Add(1) }})
	const size = 24 << 20
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	var r *relay
	var relayAtUp, udpAtDown, relayAtDown uint64
	got := make(chan result, 1)
	go func() {
		st, err := os.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer st.Close()
		h := sha256.New()
		var n int64
		buf := make([]byte, 32<<10)
		for {
			k, err := st.Read(buf)
			h.Write(buf[:k])
			before := n
			n += int64(k)
			if before < 4<<20 && n >= 4<<20 {
				relayAtUp = carrierBytes(vs.Link(), CarrierRelay)
				r = attachUDP(t, vs, os)
			}
			if before < 12<<20 && n >= 12<<20 {
				udpAtDown = carrierBytes(vs.Link(), CarrierUDP)
				relayAtDown = carrierBytes(vs.Link(), CarrierRelay)
				r.blackhole.Store(true)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				got <- result{n: n, err: err}
				return
			}
		}
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		got <- result{sum, n, nil}
	}()
	st, err := vs.Open()
	if err != nil {
		t.Fatal(err)
	}
	st.SetWriteDeadline(time.Now().Add(60 * time.Second))
	want, err := sendDigest(st, size)
	if err != nil {
		t.Fatal(err)
	}
	res := <-got
	if res.err != nil || res.n != size || res.sum != want {
		t.Fatalf("received %d bytes, err %v, digest match %v", res.n, res.err, res.sum == want)
	}
	relayEnd := carrierBytes(vs.Link(), CarrierRelay)
	t.Logf("relay queue drops %d; link %+v", lastRelayCarrier.Dropped(), vs.Link().Stats())
	t.Logf("visitor sent: %.1f MB on the relay before the upgrade, %.1f MB direct, then %.1f MB on the relay after the black hole; %d switches",
		float64(relayAtUp)/1e6, float64(udpAtDown)/1e6, float64(relayEnd-relayAtDown)/1e6, switches.Load())
	if relayAtUp < 4<<20 {
		t.Errorf("only %d bytes on the relay before the direct carrier came", relayAtUp)
	}
	// The 8 MB between the upgrade and the black hole went mostly direct.
	if udpAtDown < 6<<20 || relayAtDown-relayAtUp > 2<<20 {
		t.Errorf("between upgrade and black hole: %d bytes direct, %d relayed", udpAtDown, relayAtDown-relayAtUp)
	}
	if relayEnd-relayAtDown < 10<<20 {
		t.Errorf("after the black hole only %d bytes on the relay", relayEnd-relayAtDown)
	}
	if err := vs.Err(); err != nil {
		t.Fatalf("session ended: %v", err)
	}
}

// TestLinkNoCarrier: a link whose only carrier ends lives Linger long,
// then ends with ErrNoCarrier; one with Linger 0 ends with the carrier's
// cause at once.
func TestLinkNoCarrier(t *testing.T) {
	checkLeaks(t)
	for _, linger := range []time.Duration{0, 300 * time.Millisecond} {
		l, err := NewLink(LinkConfig{Linger: linger})
		if err != nil {
			t.Fatal(err)
		}
		rv, ro := recordPair(t)
		l.Attach(CarrierRelay, NewStreamCarrier(rv, 0))
		ro.Close()
		select {
		case <-l.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("linger %v: the link did not end", linger)
		}
		if linger == 0 && errors.Is(l.Err(), ErrNoCarrier) || linger > 0 && !errors.Is(l.Err(), ErrNoCarrier) {
			t.Errorf("linger %v: %v", linger, l.Err())
		}
		l.Close()
	}
}

// TestLinkDatagrams: datagrams go over whatever carrier is up, each
// delivered once, and a link without a usable carrier drops them (and
// asks for one) instead of blocking.
func TestLinkDatagrams(t *testing.T) {
	checkLeaks(t)
	var asked atomic.Int32
	vl, err := NewLink(LinkConfig{NeedCarrier: func() { asked.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer vl.Close()
	ol, err := NewLink(LinkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer ol.Close()
	if err := vl.Send([]byte("lost")); err != nil || vl.Stats().Dropped != 1 {
		t.Fatalf("send without carrier: %v, %+v", err, vl.Stats())
	}
	waitUntil(t, func() bool { return asked.Load() == 1 })
	rv, ro := recordPair(t)
	vl.Attach(CarrierRelay, NewStreamCarrier(rv, 0))
	ol.Attach(CarrierRelay, NewStreamCarrier(ro, 0))
	vconn, oconn := listen(t), listen(t)
	sid := NewSessionID()
	vc, _ := NewUDPCarrier(vconn, addrOf(oconn), testSecret, sid, RoleVisitor, PayloadDatagrams, testSessionConfig())
	oc, _ := NewUDPCarrier(oconn, addrOf(vconn), testSecret, sid, RoleOwner, PayloadDatagrams, testSessionConfig())
	vl.Attach(CarrierUDP, vc)
	ol.Attach(CarrierUDP, oc)
	buf := make([]byte, 100)
	for i := range 200 {
		msg := []byte{byte(i), byte(rand.IntN(256))}
		if err := vl.Send(msg); err != nil {
			t.Fatal(err)
		}
		ol.Send(msg) // and back
		for _, l := range []*Link{ol, vl} {
			n, err := l.Recv(buf)
			if err != nil || string(buf[:n]) != string(msg) {
				t.Fatalf("datagram %d: %q, %v", i, buf[:n], err)
			}
		}
	}
	if c := vl.Current(); c != CarrierUDP {
		t.Errorf("datagrams went on %v, want udp", c)
	}
}

func waitUntil(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLinkPeerClose: a link closed on one side ends the other's at once,
// through its relay's clean end, not after Linger.
func TestLinkPeerClose(t *testing.T) {
	checkLeaks(t)
	vs, os := linkPair(t, LinkConfig{Linger: time.Minute})
	vs.Close()
	select {
	case <-os.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the owner's session did not end")
	}
	if !errors.Is(os.Err(), ErrPeerClosed) {
		t.Fatalf("owner: %v", os.Err())
	}
}
