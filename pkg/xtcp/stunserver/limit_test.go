package stunserver

import (
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// TestNoAmplification: for every kind of request, the answer is no longer
// than the request; a bare 20-byte request (before: answered with 76 bytes)
// gets nothing, and a request padded to exactly its answer's size is
// answered.
func TestNoAmplification(t *testing.T) {
	h := &handler{software: software}
	p := netip.MustParseAddrPort("192.0.2.1:3478")
	h.addrs = [numSlots]netip.AddrPort{p, netip.AddrPortFrom(p.Addr(), 3479),
		netip.MustParseAddrPort("192.0.2.2:3478"), netip.MustParseAddrPort("192.0.2.2:3479")}
	from := netip.MustParseAddrPort("198.51.100.1:40000")
	bare := unpadded(t, stun.TransactionID, stun.BindingRequest).Raw
	if len(bare) != 20 {
		t.Fatalf("bare request of %d bytes", len(bare))
	}
	if resp, _, _, ok := h.handle(bare, from, slotPrimary); ok {
		t.Fatalf("answered a %d-byte request with %d bytes", len(bare), len(resp))
	}
	full, _, _, ok := h.answer(bare, from, slotPrimary, false)
	if !ok {
		t.Fatal("no answer built")
	}
	exact := unpadded(t, stun.TransactionID, stun.BindingRequest, padTo(len(full))).Raw
	if len(exact) != len(full) {
		t.Fatalf("padded to %d, answer is %d", len(exact), len(full))
	}
	if resp, _, _, ok := h.handle(exact, from, slotPrimary); !ok || len(resp) != len(exact) {
		t.Fatalf("request padded to the answer's %d bytes: ok=%v, %d bytes", len(full), ok, len(resp))
	}
	short := unpadded(t, stun.TransactionID, stun.BindingRequest, padTo(len(full)-4)).Raw
	if _, _, _, ok := h.handle(short, from, slotPrimary); ok {
		t.Fatal("answered a request 4 bytes shorter than the answer")
	}
	for _, from := range []netip.AddrPort{from, netip.MustParseAddrPort("[2001:db8::1]:40000")} {
		for name, req := range map[string][]byte{
			"plain":  request(t).Raw,
			"change": request(t, changeRequest{ip: true, port: true}).Raw,
			"bad":    request(t, rawAttr{stun.AttrChangeRequest, nil}).Raw,
			"fp":     request(t, stun.Fingerprint).Raw,
		} {
			resp, _, _, ok := h.handle(req, from, slotPrimary)
			if !ok {
				t.Errorf("%s from %v: padded request (%d bytes) not answered", name, from, len(req))
				continue
			}
			t.Logf("%s from %v: %d bytes answered per %d request bytes (%.2f)", name, from, len(resp), len(req), float64(len(resp))/float64(len(req)))
		}
	}
}

func TestLimiter(t *testing.T) {
	l := newLimiter(5)
	ip := netip.MustParseAddr("127.0.0.1")
	now := time.Unix(1000, 0)
	n := 0
	for range 50 {
		if l.allow(ip, now) {
			n++
		}
	}
	if n != 5 {
		t.Fatalf("burst: %d answers, want 5", n)
	}
	if l.allow(ip, now.Add(100*time.Millisecond)) {
		t.Fatal("answered before a token came back")
	}
	if !l.allow(ip, now.Add(200*time.Millisecond)) {
		t.Fatal("no token after 1/5 s")
	}
	// Another IP has its own bucket; the mapped form is the same IP.
	if !l.allow(netip.MustParseAddr("127.0.0.2"), now) {
		t.Fatal("a second IP was limited by the first")
	}
	if l.allow(netip.MustParseAddr("::ffff:127.0.0.1"), now.Add(200*time.Millisecond)) {
		t.Fatal("the IPv4-mapped form escaped the limit")
	}
	// Many sources: the map stays bounded, and the sources beyond it share
	// one bucket, so in all they get at most maxTracked*5 + 5 answers.
	l = newLimiter(5)
	answered := 0
	for i := range 3 * maxTracked {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		for range 6 {
			if l.allow(a, now) {
				answered++
			}
		}
	}
	if tracked, _ := l.stats(); tracked > maxTracked {
		t.Fatalf("%d IPs tracked, bound %d", tracked, maxTracked)
	}
	if answered > maxTracked*5+5 {
		t.Fatalf("%d answers to %d sources", answered, 3*maxTracked)
	}
	// Once their buckets refill, the remembered IPs make room.
	if !l.allow(netip.MustParseAddr("10.200.0.1"), now.Add(2*time.Second)) {
		t.Fatal("a new IP after the others went quiet was refused")
	}
	if l0 := newLimiter(0); !l0.allow(ip, now) || !l0.allow(ip, now) {
		t.Fatal("rate 0 is no limit")
	}
}

// TestRateLimit: a burst of 100 requests from one source gets the bucket's
// worth of answers plus what refilled meanwhile, not 100.
func TestRateLimit(t *testing.T) {
	var s *Server
	var err error
	for range 5 {
		if s, err = Listen(Config{Primary: netip.AddrPortFrom(lo1, 0), PerIPPerSecond: 5}); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := newClient(t)
	start := time.Now()
	const sent = 100
	for range sent {
		c.send(s.Addrs()[0], request(t).Raw)
	}
	got := 0
	buf := make([]byte, 1500)
	for {
		c.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, _, err := c.c.ReadFromUDPAddrPort(buf); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal(err)
			}
			break
		}
		got++
	}
	elapsed := time.Since(start)
	bound := 5 + int(elapsed.Seconds()*5) + 1
	if got > bound || got == 0 {
		t.Fatalf("%d answers to %d requests in %v, want 1..%d", got, sent, elapsed, bound)
	}
	if d := s.Dropped(); d < uint64(sent-bound) {
		t.Fatalf("Dropped %d", d)
	}
	t.Logf("%d of %d requests answered in %v (limit 5/s), %d dropped", got, sent, elapsed.Round(time.Millisecond), s.Dropped())
}
