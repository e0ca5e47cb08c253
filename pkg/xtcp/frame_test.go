package xtcp

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestFrameRoundTrip(t *testing.T) {
	sid := NewSessionID()
	for _, kind := range []frameKind{kindKCP, kindDatagram} {
		s := newFrameSealer(testSecret, sid, kind, RoleVisitor)
		o := newFrameOpener(testSecret, sid, kind, RoleVisitor)
		for _, n := range []int{0, 1, 100, 1350, MaxDatagramSize} {
			msg := bytes.Repeat([]byte{byte(n)}, n)
			f := s.seal(nil, msg)
			if len(f) != n+FrameOverhead {
				t.Fatalf("frame of %d bytes for %d", len(f), n)
			}
			pt, err := o.open(f)
			if err != nil || !bytes.Equal(pt, msg) {
				t.Fatalf("kind %d, %d bytes: %v", kind, n, err)
			}
		}
	}
}

func TestFrameRejected(t *testing.T) {
	sid := NewSessionID()
	s := newFrameSealer(testSecret, sid, kindDatagram, RoleVisitor)
	good := s.seal(nil, []byte("hello, owner"))

	for i := range good {
		b := append([]byte(nil), good...)
		b[i] ^= 0x80
		if _, err := newFrameOpener(testSecret, sid, kindDatagram, RoleVisitor).open(b); err == nil {
			t.Errorf("byte %d flipped: accepted", i)
		}
	}
	cases := []struct {
		name string
		o    *frameOpener
		want error
	}{
		{"wrong key", newFrameOpener([]byte("other"), sid, kindDatagram, RoleVisitor), ErrBadMAC},
		{"wrong session", newFrameOpener(testSecret, NewSessionID(), kindDatagram, RoleVisitor), ErrBadMAC},
		{"reflected (other direction's key)", newFrameOpener(testSecret, sid, kindDatagram, RoleOwner), ErrBadMAC},
		{"other kind", newFrameOpener(testSecret, sid, kindKCP, RoleVisitor), ErrMalformed},
	}
	for _, c := range cases {
		if _, err := c.o.open(append([]byte(nil), good...)); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	for _, b := range [][]byte{nil, good[:FrameOverhead-1], []byte("HOPP" + string(good[4:]))} {
		if _, err := parseFrame(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("parseFrame(%q): %v", b, err)
		}
	}
}

func TestFrameReplay(t *testing.T) {
	sid := NewSessionID()
	s := newFrameSealer(testSecret, sid, kindKCP, RoleOwner)
	o := newFrameOpener(testSecret, sid, kindKCP, RoleOwner)
	var frames [][]byte
	for range replayWindowSize + 200 {
		frames = append(frames, s.seal(nil, []byte("x")))
	}
	clone := func(b []byte) []byte { return append([]byte(nil), b...) }
	// Out of order within the window: fine, once each.
	for _, i := range []int{5, 3, 4, 0, 1, 2} {
		if _, err := o.open(clone(frames[i])); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if _, err := o.open(clone(frames[3])); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	last := len(frames) - 1
	if _, err := o.open(clone(frames[last])); err != nil {
		t.Fatal(err)
	}
	// Unseen but too far behind.
	if _, err := o.open(clone(frames[last-replayWindowSize-1])); !errors.Is(err, ErrReplay) {
		t.Fatalf("behind the window: %v", err)
	}
	// Unseen, at the edge of the window.
	if _, err := o.open(clone(frames[last-replayWindowSize])); err != nil {
		t.Fatalf("edge of the window: %v", err)
	}
	// A forgery with a fresh counter must not move the window.
	f := clone(frames[last])
	f[13] += 100
	if _, err := o.open(f); !errors.Is(err, ErrBadMAC) {
		t.Fatal(err)
	}
	if _, err := o.open(clone(frames[last-1])); err != nil {
		t.Fatalf("window moved by a forgery: %v", err)
	}
}

func TestReplayWindow(t *testing.T) {
	var w replayWindow
	accept := func(c uint64) bool { return w.accept(c) }
	if !accept(1000) || accept(1000) || !accept(999) || accept(999) {
		t.Fatal("basic")
	}
	if !accept(1000 + replayWindowSize*3) {
		t.Fatal("jump")
	}
	if accept(1001) {
		t.Fatal("far behind after a jump")
	}
	// After a jump the ring is cleared: counters just behind are new.
	for c := uint64(1000 + replayWindowSize*3 - 1); c > 1000+replayWindowSize*2; c-- {
		if !accept(c) {
			t.Fatalf("counter %d refused", c)
		}
	}
}

// TestFramesDoNotCrossAttempts: two attempts with the same session ID but
// their own attempt keys (as two PAKE exchanges give) share no frame or
// control packet, even at the same counter — no nonce reuse under one key,
// no replay from one attempt into the other.
func TestFramesDoNotCrossAttempts(t *testing.T) {
	sid := NewSessionID()
	k1, k2 := []byte("attempt one key, 32 bytes long!!"), []byte("attempt two key, 32 bytes long!!")
	for _, kind := range []frameKind{kindKCP, kindDatagram} {
		f1 := newFrameSealer(k1, sid, kind, RoleVisitor).seal(nil, []byte("payload"))
		f2 := newFrameSealer(k2, sid, kind, RoleVisitor).seal(nil, []byte("payload"))
		if bytes.Equal(f1, f2) {
			t.Fatalf("kind %d: the same frame under both attempts", kind)
		}
		if _, err := newFrameOpener(k2, sid, kind, RoleVisitor).open(bytes.Clone(f1)); err == nil {
			t.Fatalf("kind %d: a frame of attempt 1 opened in attempt 2", kind)
		}
		if _, err := newFrameOpener(k1, sid, kind, RoleVisitor).open(f1); err != nil {
			t.Fatalf("kind %d: own frame: %v", kind, err)
		}
	}
	now := time.Now()
	pkt := newCtlKey(k1, sid).seal(nil, ctlProbe, RoleVisitor, 1, now)
	if _, err := newCtlKey(k2, sid).open(pkt); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("control packet of attempt 1 in attempt 2: %v, want ErrBadMAC", err)
	}
	if string(deriveKey(k1, sid, infoKCPConv, 4)) == string(deriveKey(k2, sid, infoKCPConv, 4)) {
		t.Fatal("both attempts have the same KCP conversation ID")
	}
}
