package xtcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// fuzzSession is fixed so that seeds stay valid across runs.
var fuzzSession = SessionID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

// FuzzCtl feeds arbitrary bytes to the control packet decoder and checks.
// Seeds are the packets of the table tests.
func FuzzCtl(f *testing.F) {
	k := newCtlKey(testSecret, fuzzSession)
	now := time.Unix(1_700_000_000, 0)
	for typ := ctlProbe; typ <= ctlClose; typ++ {
		f.Add(k.seal(nil, typ, RoleVisitor, uint32(typ), now))
	}
	f.Add(k.seal(nil, ctlProbe, RoleOwner, 1, now))
	f.Add(newCtlKey([]byte("other"), fuzzSession).seal(nil, ctlProbe, RoleVisitor, 1, now))
	f.Add([]byte("HOPP"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseCtl(b)
		if err == nil {
			if len(b) != ctlLen || !isCtl(b) || !p.Role.valid() || p.Type < ctlProbe || p.Type > ctlClose {
				t.Fatalf("accepted a malformed packet: %x", b)
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("parse error %v is not ErrMalformed", err)
		}
		p, err = k.open(b)
		if err != nil {
			return
		}
		// Authentic: the MAC must really be the key's.
		if !bytes.Equal(k.sum(b[:ctlMACOff]), b[ctlMACOff:]) {
			t.Fatal("opened with a bad MAC")
		}
		g := newCtlGuard(RoleOwner, time.Minute)
		err1 := g.check(p, time.Unix(0, p.Timestamp))
		err2 := g.check(p, time.Unix(0, p.Timestamp))
		if err1 == nil && !errors.Is(err2, ErrReplay) {
			t.Fatalf("second check of one packet: %v", err2)
		}
	})
}

// FuzzFrame feeds arbitrary bytes to the data frame decoder and opener.
func FuzzFrame(f *testing.F) {
	s := newFrameSealer(testSecret, fuzzSession, kindDatagram, RoleVisitor)
	var sealed [][]byte
	for _, m := range []string{"", "a", "hello, owner", string(bytes.Repeat([]byte{7}, 1400))} {
		fr := s.seal(nil, []byte(m))
		sealed = append(sealed, fr)
		f.Add(fr)
	}
	f.Add(newFrameSealer(testSecret, fuzzSession, kindKCP, RoleVisitor).seal(nil, []byte("kcp")))
	f.Add([]byte("HOPD\x01\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseFrame(b)
		if err == nil {
			if len(b) < FrameOverhead || (h.Kind != kindKCP && h.Kind != kindDatagram) {
				t.Fatalf("accepted a malformed frame: %x", b)
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("parse error %v is not ErrMalformed", err)
		}
		o := newFrameOpener(testSecret, fuzzSession, kindDatagram, RoleVisitor)
		in := append([]byte(nil), b...)
		pt, err := o.open(in)
		if err != nil {
			return
		}
		// Only a frame we sealed opens.
		found := false
		for _, fr := range sealed {
			found = found || bytes.Equal(fr, b)
		}
		if !found {
			t.Fatalf("opened a frame nobody sealed: %x -> %q", b, pt)
		}
		if _, err := o.open(append([]byte(nil), b...)); !errors.Is(err, ErrReplay) {
			t.Fatalf("second open: %v", err)
		}
	})
}

// FuzzCandidateJSON feeds arbitrary JSON to the candidate decoder, as the
// control protocol delivers it.
func FuzzCandidateJSON(f *testing.F) {
	f.Add([]byte(`[{"addr":"10.1.0.10:4000","kind":"host"},{"addr":"[2001:db8::1]:5000","kind":"srflx"}]`))
	f.Add([]byte(`[{"addr":"10.1.0.10:4000","kind":"relay"}]`))
	f.Add([]byte(`[{"addr":"[::ffff:10.0.0.1]:0","kind":"predicted"}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var cs []Candidate
		if json.Unmarshal(b, &cs) != nil {
			return
		}
		for _, c := range OrderCandidates(nil, cs) {
			if err := c.Validate(); err != nil {
				t.Fatalf("OrderCandidates kept %v: %v", c, err)
			}
			out, err := json.Marshal(c)
			if err != nil {
				t.Fatalf("marshal %v: %v", c, err)
			}
			var back Candidate
			if err := json.Unmarshal(out, &back); err != nil || back != c {
				t.Fatalf("round trip %s: %v %v", out, back, err)
			}
		}
	})
}
