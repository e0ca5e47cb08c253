package xtcp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

func testDatagramConfig() DatagramConfig {
	return DatagramConfig{KeepaliveInterval: 100 * time.Millisecond, KeepaliveTimeout: 600 * time.Millisecond}
}

// datagramPair starts xudp on two loopback sockets (the punch is tested
// on its own). It returns (visitor, owner) and their sockets.
func datagramPair(t *testing.T, cfg DatagramConfig) (v, o *DatagramPath, vconn, oconn *net.UDPConn, sid SessionID) {
	t.Helper()
	vconn, oconn = listen(t), listen(t)
	sid = NewSessionID()
	var err error
	v, err = NewDatagramPath(vconn, addrOf(oconn), testSecret, sid, RoleVisitor, cfg)
	if err != nil {
		t.Fatal(err)
	}
	o, err = NewDatagramPath(oconn, addrOf(vconn), testSecret, sid, RoleOwner, cfg)
	if err != nil {
		v.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close(); o.Close() })
	return v, o, vconn, oconn, sid
}

func TestDatagramEcho(t *testing.T) {
	checkLeaks(t)
	v, o, _, _, _ := datagramPair(t, testDatagramConfig())
	go func() {
		buf := make([]byte, MaxDatagramSize)
		for {
			n, err := o.Recv(buf)
			if err != nil {
				return
			}
			o.Send(buf[:n])
		}
	}()
	buf := make([]byte, MaxDatagramSize)
	for i, size := range []int{0, 1, 64, 1200, 1442, 8000, 60000, MaxDatagramSize} {
		msg := bytes.Repeat([]byte{byte(i + 1)}, size)
		if err := v.Send(msg); err != nil {
			t.Fatalf("send %d: %v", size, err)
		}
		n, err := v.Recv(buf)
		if err != nil || !bytes.Equal(buf[:n], msg) {
			t.Fatalf("echo of %d bytes: %d bytes, %v", size, n, err)
		}
	}
	if err := v.Send(make([]byte, MaxDatagramSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize: %v", err)
	}
	// Short buffer: cut, and said so.
	v.Send([]byte("0123456789"))
	small := make([]byte, 4)
	if n, err := v.Recv(small); n != 4 || !errors.Is(err, io.ErrShortBuffer) || string(small) != "0123" {
		t.Fatalf("short read: %d %v %q", n, err, small)
	}
}

// TestDatagramReplayAndStrangers plays the visitor by hand from its socket:
// each datagram is delivered once however often it is replayed, and
// packets from another address or without the key are dropped.
func TestDatagramReplayAndStrangers(t *testing.T) {
	checkLeaks(t)
	vconn, oconn := listen(t), listen(t)
	sid := NewSessionID()
	o, err := NewDatagramPath(oconn, addrOf(vconn), testSecret, sid, RoleOwner, testDatagramConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	s := newFrameSealer(testSecret, sid, kindDatagram, RoleVisitor)
	stranger := listen(t)
	var frames [][]byte
	for i := range 5 {
		frames = append(frames, s.seal(nil, fmt.Appendf(nil, "datagram %d", i)))
	}
	forged := newFrameSealer([]byte("wrong"), sid, kindDatagram, RoleVisitor).seal(nil, []byte("forged"))
	reflected := newFrameSealer(testSecret, sid, kindDatagram, RoleOwner).seal(nil, []byte("reflected"))
	for _, f := range frames {
		vconn.WriteToUDPAddrPort(f, addrOf(oconn))
		vconn.WriteToUDPAddrPort(f, addrOf(oconn))    // replay
		stranger.WriteToUDPAddrPort(f, addrOf(oconn)) // right bytes, wrong address
		vconn.WriteToUDPAddrPort(forged, addrOf(oconn))
		vconn.WriteToUDPAddrPort(reflected, addrOf(oconn))
	}
	vconn.WriteToUDPAddrPort(frames[0], addrOf(oconn)) // late replay
	buf := make([]byte, 100)
	for i := range 5 {
		n, err := o.Recv(buf)
		if err != nil || string(buf[:n]) != fmt.Sprintf("datagram %d", i) {
			t.Fatalf("datagram %d: %q %v", i, buf[:n], err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for o.Stats().Rejected < 16 || o.Stats().Stray < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", o.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-time.After(50 * time.Millisecond):
	case <-o.Done():
		t.Fatalf("ended: %v", o.Err())
	}
	if got := len(o.in); got != 0 {
		t.Fatalf("%d extra datagrams delivered", got)
	}
}

func TestDatagramDeadPath(t *testing.T) {
	checkLeaks(t)
	cfg := testDatagramConfig()
	v, o, vconn, _, _ := datagramPair(t, cfg)
	v.Send([]byte("hi"))
	buf := make([]byte, 10)
	if _, err := o.Recv(buf); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	vconn.Close()
	n, err := o.Recv(buf) // blocks until the path dies
	took := time.Since(killed)
	if n != 0 || !errors.Is(err, ErrPathDead) || !errors.Is(o.Err(), ErrPathDead) {
		t.Fatalf("Recv: %d, %v", n, err)
	}
	if took < cfg.KeepaliveTimeout-cfg.KeepaliveInterval || took > cfg.KeepaliveTimeout+500*time.Millisecond {
		t.Fatalf("dead after %v, timeout %v", took, cfg.KeepaliveTimeout)
	}
	if err := o.Send([]byte("x")); !errors.Is(err, ErrPathDead) {
		t.Fatalf("Send after death: %v", err)
	}
	<-v.Done()
	t.Logf("owner: %v after %v; visitor: %v", o.Err(), took, v.Err())
}

// TestDatagramKeepalive checks that an idle path stays up across several
// keepalive timeouts and measures an RTT.
func TestDatagramKeepalive(t *testing.T) {
	checkLeaks(t)
	cfg := testDatagramConfig()
	v, o, _, _, _ := datagramPair(t, cfg)
	select {
	case <-v.Done():
		t.Fatalf("visitor ended: %v", v.Err())
	case <-o.Done():
		t.Fatalf("owner ended: %v", o.Err())
	case <-time.After(3 * cfg.KeepaliveTimeout):
	}
	st := v.Stats()
	if st.RTT <= 0 || st.PacketsReceived < 10 {
		t.Fatalf("stats %+v", st)
	}
	o.Close()
	select {
	case <-v.Done():
	case <-time.After(time.Second):
		t.Fatal("visitor did not see the close")
	}
	if !errors.Is(v.Err(), ErrPeerClosed) {
		t.Fatalf("visitor: %v", v.Err())
	}
}

// TestPunchThenDatagram runs the whole xudp path: punch, then datagrams on
// the punched sockets.
func TestPunchThenDatagram(t *testing.T) {
	checkLeaks(t)
	oconn, vconn := listen(t), listen(t)
	sid := NewSessionID()
	or, vr := punchBoth(t.Context(), oconn, vconn,
		testPunchConfig(sid, RoleOwner, host(deadPort(t)), host(addrOf(vconn))),
		testPunchConfig(sid, RoleVisitor, host(addrOf(oconn))))
	if or.err != nil || vr.err != nil {
		t.Fatal(or.err, vr.err)
	}
	v, err := NewDatagramPath(vconn, vr.res.Remote, testSecret, sid, RoleVisitor, testDatagramConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	o, err := NewDatagramPath(oconn, or.res.Remote, testSecret, sid, RoleOwner, testDatagramConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	o.Send([]byte("from the owner"))
	buf := make([]byte, 64)
	n, err := v.Recv(buf)
	if err != nil || string(buf[:n]) != "from the owner" {
		t.Fatalf("%q %v", buf[:n], err)
	}
}
