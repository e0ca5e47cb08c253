package xtcp

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// udpCarrierPair connects two UDP carriers on loopback sockets directly.
// A goroutine reads o, and v too if readV (else the link v is attached to
// reads it).
func udpCarrierPair(t *testing.T, cfg SessionConfig, readV bool) (v, o *UDPCarrier) {
	t.Helper()
	vconn, oconn := listen(t), listen(t)
	sid := NewSessionID()
	v, err := NewUDPCarrier(vconn, addrOf(oconn), testSecret, sid, RoleVisitor, PayloadKCP, cfg)
	if err != nil {
		t.Fatal(err)
	}
	o, err = NewUDPCarrier(oconn, addrOf(vconn), testSecret, sid, RoleOwner, PayloadKCP, cfg)
	if err != nil {
		v.Close()
		t.Fatal(err)
	}
	// Control packets are handled by the reader: read as a link would.
	var wg sync.WaitGroup
	readers := []*UDPCarrier{o}
	if readV {
		readers = append(readers, v)
	}
	for _, c := range readers {
		wg.Go(func() {
			b := make([]byte, 2048)
			for {
				if _, err := c.RecvPacket(b); err != nil {
					return
				}
			}
		})
	}
	t.Cleanup(func() { v.Close(); o.Close(); wg.Wait() })
	return v, o
}

// TestSetKeepaliveInterval: a path with an hour's interval sends its
// first keepalive and then nothing for an hour; set to 20 ms it sends a
// keepalive every 20 ms from then on (polled); invalid intervals are
// refused and change nothing; setting from several goroutines is safe.
func TestSetKeepaliveInterval(t *testing.T) {
	cfg := SessionConfig{KeepaliveInterval: time.Hour, KeepaliveTimeout: 2 * time.Hour}
	v, o := udpCarrierPair(t, cfg, true)
	waitUntil(t, func() bool { return o.Stats().PacketsReceived >= 1 }) // the first keepalive
	for _, d := range []time.Duration{0, -time.Second, 2 * time.Hour, 3 * time.Hour} {
		if err := v.SetKeepaliveInterval(d); !errors.Is(err, ErrInvalidInterval) {
			t.Errorf("SetKeepaliveInterval(%v) = %v, want ErrInvalidInterval", d, err)
		}
	}
	if got := v.KeepaliveInterval(); got != time.Hour {
		t.Fatalf("interval %v after refused changes, want 1h", got)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			if err := v.SetKeepaliveInterval(time.Duration(30+i) * time.Minute); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := v.SetKeepaliveInterval(20 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if got := v.KeepaliveInterval(); got != 20*time.Millisecond {
		t.Fatalf("interval %v, want 20ms", got)
	}
	base := o.Stats().PacketsReceived
	waitUntil(t, func() bool { return o.Stats().PacketsReceived >= base+20 })
	if v.Err() != nil || o.Err() != nil {
		t.Fatalf("paths ended: %v, %v", v.Err(), o.Err())
	}
}

// TestLinkSetKeepaliveInterval: the link passes the interval to its UDP
// carrier and to one attached later, and reports a carrier's refusal.
func TestLinkSetKeepaliveInterval(t *testing.T) {
	l, err := NewLink(LinkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.KeepaliveInterval(); got != 0 {
		t.Fatalf("interval %v before any set, want 0", got)
	}
	cfg := SessionConfig{KeepaliveInterval: time.Hour, KeepaliveTimeout: 2 * time.Hour}
	v1, _ := udpCarrierPair(t, cfg, false)
	if err := l.Attach(CarrierUDP, v1); err != nil {
		t.Fatal(err)
	}
	if err := l.SetKeepaliveInterval(time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := v1.KeepaliveInterval(); got != time.Minute {
		t.Errorf("attached carrier's interval %v, want 1m", got)
	}
	v2, _ := udpCarrierPair(t, cfg, false)
	if err := l.Attach(CarrierUDP, v2); err != nil {
		t.Fatal(err)
	}
	if got := v2.KeepaliveInterval(); got != time.Minute {
		t.Errorf("later carrier's interval %v, want 1m", got)
	}
	if err := l.SetKeepaliveInterval(3 * time.Hour); !errors.Is(err, ErrInvalidInterval) {
		t.Errorf("interval beyond the carrier's timeout: %v, want ErrInvalidInterval", err)
	}
	if err := l.SetKeepaliveInterval(0); !errors.Is(err, ErrInvalidInterval) {
		t.Errorf("zero interval: %v, want ErrInvalidInterval", err)
	}
	if got := v2.KeepaliveInterval(); got != time.Minute {
		t.Errorf("carrier's interval %v after refused changes, want 1m", got)
	}
}
