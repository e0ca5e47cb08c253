package xtcp

import (
	"errors"
	"testing"
	"time"
)

func sealCtl(k *ctlKey, typ ctlType, role Role, seq uint32, at time.Time) []byte {
	return k.seal(nil, typ, role, seq, at)
}

// checkCtl runs a packet through what a receiver with role self does.
func checkCtl(k *ctlKey, g *ctlGuard, b []byte, now time.Time) (ctlPacket, error) {
	p, err := k.open(b)
	if err != nil {
		return p, err
	}
	return p, g.check(p, now)
}

func TestCtlValid(t *testing.T) {
	sid := NewSessionID()
	k := newCtlKey(testSecret, sid)
	now := time.Now()
	for typ := ctlProbe; typ <= ctlClose; typ++ {
		b := sealCtl(k, typ, RoleVisitor, 42, now)
		if len(b) != ctlLen {
			t.Fatalf("%v: %d bytes", typ, len(b))
		}
		g := newCtlGuard(RoleOwner, time.Minute)
		p, err := checkCtl(k, g, b, now)
		if err != nil {
			t.Fatalf("%v: %v", typ, err)
		}
		if p.Type != typ || p.Role != RoleVisitor || p.Seq != 42 || p.Session != sid || p.Timestamp != now.UnixNano() {
			t.Fatalf("%v: decoded %+v", typ, p)
		}
	}
}

func TestCtlRejected(t *testing.T) {
	sid := NewSessionID()
	k := newCtlKey(testSecret, sid)
	now := time.Now()
	good := sealCtl(k, ctlProbe, RoleVisitor, 7, now)

	// Every single-byte change is caught, by the decoder or the MAC.
	for i := range good {
		b := append([]byte(nil), good...)
		b[i] ^= 0x01
		if _, err := checkCtl(k, newCtlGuard(RoleOwner, time.Minute), b, now); err == nil {
			t.Errorf("byte %d flipped: accepted", i)
		} else if i >= 24 && !errors.Is(err, ErrBadMAC) {
			t.Errorf("byte %d flipped: %v, want ErrBadMAC", i, err)
		}
	}

	cases := []struct {
		name string
		b    []byte
		now  time.Time
		self Role
		want error
	}{
		{"wrong key", sealCtl(newCtlKey([]byte("another secret"), sid), ctlProbe, RoleVisitor, 1, now), now, RoleOwner, ErrBadMAC},
		{"wrong session", sealCtl(newCtlKey(testSecret, NewSessionID()), ctlProbe, RoleVisitor, 1, now), now, RoleOwner, ErrWrongSession},
		{"reflected", sealCtl(k, ctlProbe, RoleOwner, 1, now), now, RoleOwner, ErrReflected},
		{"too old", sealCtl(k, ctlProbe, RoleVisitor, 1, now.Add(-61*time.Second)), now, RoleOwner, ErrStale},
		{"too far ahead", sealCtl(k, ctlProbe, RoleVisitor, 1, now.Add(61*time.Second)), now, RoleOwner, ErrStale},
		{"short", good[:ctlLen-1], now, RoleOwner, ErrMalformed},
		{"long", append(append([]byte(nil), good...), 0), now, RoleOwner, ErrMalformed},
		{"empty", nil, now, RoleOwner, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := checkCtl(k, newCtlGuard(c.self, time.Minute), c.b, c.now)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}

	t.Run("replayed", func(t *testing.T) {
		g := newCtlGuard(RoleOwner, time.Minute)
		if _, err := checkCtl(k, g, good, now); err != nil {
			t.Fatal(err)
		}
		if _, err := checkCtl(k, g, good, now.Add(time.Second)); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay: %v", err)
		}
		// After the window the timestamp rejects it, whatever the cache.
		if _, err := checkCtl(k, g, good, now.Add(2*time.Minute)); !errors.Is(err, ErrStale) {
			t.Fatalf("late replay: %v", err)
		}
	})
	t.Run("within skew", func(t *testing.T) {
		g := newCtlGuard(RoleOwner, time.Minute)
		b := sealCtl(k, ctlKeepalive, RoleVisitor, 1, now.Add(59*time.Second))
		if _, err := checkCtl(k, g, b, now); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCtlGuardForgets(t *testing.T) {
	k := newCtlKey(testSecret, NewSessionID())
	g := newCtlGuard(RoleOwner, time.Second)
	start := time.Now()
	for i := range maxNonces {
		now := start.Add(time.Duration(i) * time.Millisecond)
		if _, err := checkCtl(k, g, sealCtl(k, ctlKeepalive, RoleVisitor, uint32(i), now), now); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	if n := len(g.seen); n > maxNonces/2+1000 {
		t.Fatalf("%d nonces remembered", n)
	}
}

func TestParseCtlStrict(t *testing.T) {
	k := newCtlKey(testSecret, NewSessionID())
	good := sealCtl(k, ctlProbe, RoleVisitor, 1, time.Now())
	mut := func(i int, v byte) []byte {
		b := append([]byte(nil), good...)
		b[i] = v
		return b
	}
	for name, b := range map[string][]byte{
		"magic":    mut(0, 'X'),
		"version":  mut(4, 2),
		"type 0":   mut(5, 0),
		"type 8":   mut(5, 8),
		"role 0":   mut(22, 0),
		"role 3":   mut(22, 3),
		"reserved": mut(23, 1),
	} {
		if _, err := parseCtl(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
