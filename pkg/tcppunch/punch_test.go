package tcppunch

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/xtcp"
	"github.com/hopproxy/hop/pkg/xtcp/stunserver"
)

func testKey() []byte {
	k := make([]byte, xtcp.KeySize)
	rand.Read(k)
	return k
}

func listen(t *testing.T, addr string) *Endpoint {
	t.Helper()
	ep, err := Listen(nil, netip.MustParseAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	return ep
}

func cands(ep *Endpoint, ips ...string) []xtcp.Candidate {
	var out []xtcp.Candidate
	for _, ip := range ips {
		out = append(out, xtcp.Candidate{Addr: netip.AddrPortFrom(netip.MustParseAddr(ip), ep.Port()), Kind: xtcp.Host})
	}
	return out
}

type punchResult struct {
	c   *Carrier
	err error
}

// punchPair runs both sides' Punch at once and returns their results; edit
// the two configs (filled with one key, session and StartAt) in edit.
func punchPair(t *testing.T, ev, eo *Endpoint, cv, co []xtcp.Candidate, edit func(v, o *Config)) (v, o punchResult) {
	t.Helper()
	key, id := testKey(), xtcp.NewSessionID()
	start := time.Now().Add(50 * time.Millisecond)
	vc := Config{Key: key, SessionID: id, Role: xtcp.RoleVisitor, Remote: co, StartAt: start, Timeout: 5 * time.Second}
	oc := Config{Key: key, SessionID: id, Role: xtcp.RoleOwner, Remote: cv, StartAt: start, Timeout: 5 * time.Second}
	if edit != nil {
		edit(&vc, &oc)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); v.c, v.err = Punch(context.Background(), ev, vc) }()
	go func() { defer wg.Done(); o.c, o.err = Punch(context.Background(), eo, oc) }()
	wg.Wait()
	for _, r := range []punchResult{v, o} {
		if r.c != nil {
			t.Cleanup(func() { r.c.Close() })
		}
	}
	return v, o
}

// mustPair punches on loopback and returns the two carriers.
func mustPair(t *testing.T, edit func(v, o *Config)) (*Carrier, *Carrier) {
	t.Helper()
	ev, eo := listen(t, "127.0.0.1:0"), listen(t, "127.0.0.1:0")
	v, o := punchPair(t, ev, eo, cands(ev, "127.0.0.1"), cands(eo, "127.0.0.1"), edit)
	if v.err != nil || o.err != nil {
		t.Fatalf("punch: visitor %v, owner %v", v.err, o.err)
	}
	return v.c, o.c
}

func recvWithin(t *testing.T, c *Carrier, d time.Duration) ([]byte, error) {
	t.Helper()
	type r struct {
		b   []byte
		err error
	}
	ch := make(chan r, 1)
	go func() {
		buf := make([]byte, MaxPacket)
		n, err := c.RecvPacket(buf)
		ch <- r{buf[:n], err}
	}()
	select {
	case x := <-ch:
		return x.b, x.err
	case <-time.After(d):
		c.Close() // lets the goroutine end
		t.Fatalf("no packet within %v", d)
		return nil, nil
	}
}

// Two punches on loopback meet, both sides end on the same connection, and
// packets cross both ways intact; Close tells the peer.
func TestPunchLoopback(t *testing.T) {
	v, o := mustPair(t, nil)
	if v.LocalAddr() != o.RemoteAddr() || v.RemoteAddr() != o.LocalAddr() {
		t.Fatalf("different connections: visitor %v→%v, owner %v→%v", v.LocalAddr(), v.RemoteAddr(), o.LocalAddr(), o.RemoteAddr())
	}
	for i, pair := range [][2]*Carrier{{v, o}, {o, v}} {
		for _, size := range []int{0, 1, 1350, MaxPacket} {
			msg := bytes.Repeat([]byte{byte(i + size)}, size)
			if err := pair[0].SendPacket(msg); err != nil {
				t.Fatal(err)
			}
			got, err := recvWithin(t, pair[1], 5*time.Second)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("packet of %d bytes: got %d bytes, %v", size, len(got), err)
			}
		}
	}
	if err := v.SendPacket(make([]byte, MaxPacket+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized packet: %v, want ErrTooLarge", err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	v.Close() // twice is fine
	if !errors.Is(v.Err(), ErrClosed) {
		t.Errorf("closed carrier's Err %v, want ErrClosed", v.Err())
	}
	select {
	case <-o.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the peer did not learn of the close")
	}
	if !errors.Is(o.Err(), ErrPeerClosed) {
		t.Errorf("peer's Err %v, want ErrPeerClosed", o.Err())
	}
	if _, err := o.RecvPacket(make([]byte, 10)); !errors.Is(err, ErrPeerClosed) {
		t.Errorf("RecvPacket after the end: %v", err)
	}
	if err := o.SendPacket([]byte("x")); !errors.Is(err, ErrPeerClosed) {
		t.Errorf("SendPacket after the end: %v", err)
	}
}

// With two candidates each, several connections can authenticate; the
// visitor's nominate makes both sides keep the same one.
func TestPunchNominatesOne(t *testing.T) {
	for i := range 5 {
		ev, eo := listen(t, "0.0.0.0:0"), listen(t, "0.0.0.0:0")
		v, o := punchPair(t, ev, eo, cands(ev, "127.0.0.1", "127.0.0.2"), cands(eo, "127.0.0.2", "127.0.0.1"), nil)
		if v.err != nil || o.err != nil {
			t.Fatalf("run %d: visitor %v, owner %v", i, v.err, o.err)
		}
		if v.c.LocalAddr() != o.c.RemoteAddr() || v.c.RemoteAddr() != o.c.LocalAddr() {
			t.Fatalf("run %d: different connections: visitor %v→%v, owner %v→%v", i, v.c.LocalAddr(), v.c.RemoteAddr(), o.c.LocalAddr(), o.c.RemoteAddr())
		}
		if err := v.c.SendPacket([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if got, err := recvWithin(t, o.c, 5*time.Second); err != nil || string(got) != "hello" {
			t.Fatalf("run %d: %q %v", i, got, err)
		}
		v.c.Close()
		o.c.Close()
	}
}

// A peer with another key, another session or our own role is refused:
// both sides time out, and the error says why.
func TestPunchRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(v, o *Config)
		want error
	}{
		{"wrong key", func(v, o *Config) { o.Key = testKey() }, ErrAuth},
		{"wrong session", func(v, o *Config) { o.SessionID = xtcp.NewSessionID() }, ErrSession},
		{"same role", func(v, o *Config) { o.Role = xtcp.RoleVisitor }, ErrRole},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, eo := listen(t, "127.0.0.1:0"), listen(t, "127.0.0.1:0")
			v, o := punchPair(t, ev, eo, cands(ev, "127.0.0.1"), cands(eo, "127.0.0.1"), func(v, o *Config) {
				v.Timeout, o.Timeout = time.Second, time.Second
				tc.edit(v, o)
			})
			for side, r := range map[string]punchResult{"visitor": v, "owner": o} {
				if r.c != nil {
					t.Fatalf("%s: punched with a bad peer", side)
				}
				if !errors.Is(r.err, ErrTimeout) || !errors.Is(r.err, tc.want) {
					t.Errorf("%s: %v, want ErrTimeout and %v", side, r.err, tc.want)
				}
			}
		})
	}
}

// A candidate that refuses every connection makes Punch fail in its
// timeout, with the dial failure.
func TestPunchNobody(t *testing.T) {
	ep := listen(t, "127.0.0.1:0")
	dead := listen(t, "127.0.0.1:0")
	port := dead.Port()
	dead.Close() // nothing listens there now: every connect is refused
	start := time.Now()
	_, err := Punch(context.Background(), ep, Config{Key: testKey(), SessionID: xtcp.NewSessionID(), Role: xtcp.RoleVisitor,
		Remote: []xtcp.Candidate{{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Kind: xtcp.Host}}, Timeout: 500 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("%v, want ErrTimeout with the refused dial", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("failed after %v, timeout 500ms", d)
	}
}

func TestPunchContextCancel(t *testing.T) {
	ep := listen(t, "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Punch(ctx, ep, Config{Key: testKey(), SessionID: xtcp.NewSessionID(), Role: xtcp.RoleOwner,
		Remote: cands(ep, "127.0.0.1"), StartAt: time.Now().Add(time.Hour)})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("%v, want context.Canceled", err)
	}
}

func fastKeepalive(interval, timeout time.Duration) func(v, o *Config) {
	return func(v, o *Config) {
		for _, c := range []*Config{v, o} {
			c.Carrier.KeepaliveInterval, c.Carrier.KeepaliveTimeout = interval, timeout
		}
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Keepalives measure the round trip; a peer that goes silent (writes
// nothing at all) is declared dead.
func TestKeepaliveSilentPeer(t *testing.T) {
	v, o := mustPair(t, fastKeepalive(50*time.Millisecond, 400*time.Millisecond))
	waitFor(t, 5*time.Second, "a keepalive round trip", func() bool { return v.RTT() > 0 && o.RTT() > 0 })
	o.mute.Store(true)
	select {
	case <-v.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a silent peer was not declared dead")
	}
	if err := v.Err(); !errors.Is(err, ErrPathDead) {
		t.Fatalf("Err %v, want ErrPathDead", err)
	}
	t.Logf("ended: %v (silence %v)", v.Err(), v.Silence())
}

// One unanswered ping is tolerated; two in a row end the path, with a
// clear error.
func TestKeepaliveToleratesOneMiss(t *testing.T) {
	v, o := mustPair(t, fastKeepalive(200*time.Millisecond, 5*time.Second))
	waitFor(t, 5*time.Second, "a keepalive round trip", func() bool { return v.Stats().KeepalivesAnswered > 0 })
	o.skipPongs.Store(1)
	waitFor(t, 10*time.Second, "a missed keepalive", func() bool { return v.Stats().MissedKeepalives > 0 })
	answered := v.Stats().KeepalivesAnswered
	waitFor(t, 10*time.Second, "keepalives answered again", func() bool { return v.Stats().KeepalivesAnswered >= answered+3 })
	select {
	case <-v.Done():
		t.Fatalf("one missed answer ended the path: %v", v.Err())
	default:
	}
	o.skipPongs.Store(1 << 30)
	select {
	case <-v.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("pings unanswered forever did not end the path")
	}
	if err := v.Err(); !errors.Is(err, ErrPathDead) || !strings.Contains(err.Error(), "2 keepalives in a row") {
		t.Fatalf("Err %v, want ErrPathDead for 2 keepalives in a row", err)
	}
}

// A full receive queue holds the stream back and loses nothing: a link
// counts on it. A full send queue says so.
func TestRecvQueueFull(t *testing.T) {
	v, o := mustPair(t, func(v, o *Config) {
		fastKeepalive(50*time.Millisecond, 2*time.Second)(v, o)
		o.Carrier.RecvQueue = 4
		v.Carrier.SendQueue = 8
	})
	sent, full := 0, 0
	for i := range 2000 {
		switch err := v.SendPacket([]byte{byte(i), byte(i >> 8)}); {
		case err == nil:
			sent++
		case errors.Is(err, xtcp.ErrQueueFull):
			full++
		default:
			t.Fatal(err)
		}
	}
	if full == 0 {
		t.Fatal("2000 packets into a send queue of 8 never found it full")
	}
	buf := make([]byte, 16)
	prev := -1
	for range sent {
		n, err := o.RecvPacket(buf)
		if err != nil || n != 2 {
			t.Fatalf("%d bytes, %v", n, err)
		}
		i := int(buf[0]) | int(buf[1])<<8
		if i <= prev {
			t.Fatalf("packet %d after %d", i, prev)
		}
		prev = i
	}
	if s := o.Stats(); s.RecvDropped != 0 || s.Received != uint64(sent) {
		t.Fatalf("receiver %+v, sent %d", s, sent)
	}
	answered := v.Stats().KeepalivesAnswered
	waitFor(t, 5*time.Second, "keepalives answered", func() bool { return v.Stats().KeepalivesAnswered > answered+2 })
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Key: testKey(), SessionID: xtcp.NewSessionID(), Role: xtcp.RoleVisitor,
		Remote: []xtcp.Candidate{{Addr: netip.MustParseAddrPort("192.0.2.1:4000"), Kind: xtcp.ServerReflexive}}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(c *Config){
		"short key":     func(c *Config) { c.Key = c.Key[:16] },
		"zero session":  func(c *Config) { c.SessionID = xtcp.SessionID{} },
		"no role":       func(c *Config) { c.Role = 0 },
		"no candidates": func(c *Config) { c.Remote = nil },
		"port 0": func(c *Config) {
			c.Remote = []xtcp.Candidate{{Addr: netip.MustParseAddrPort("192.0.2.1:0"), Kind: xtcp.Host}}
		},
		"too many":        func(c *Config) { c.Remote = make([]xtcp.Candidate, MaxCandidates+1) },
		"negative":        func(c *Config) { c.RetryInterval = -1 },
		"dial > timeout":  func(c *Config) { c.Timeout, c.DialTimeout = time.Second, 2*time.Second },
		"keepalive order": func(c *Config) { c.Carrier.KeepaliveInterval, c.Carrier.KeepaliveTimeout = time.Second, time.Second },
	} {
		c := ok
		edit(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
}

// Discover learns the port's address from a STUN-over-TCP responder (the
// server code hops runs), from the endpoint's own port.
func TestDiscover(t *testing.T) {
	st, err := stunserver.Listen(stunserver.Config{Primary: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait() // after the listeners' Close below (defers run in reverse)
	defer ln.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			st.ServeStream(c, c, time.Now().Add(5*time.Second))
			c.Close()
		}
	}()
	ep := listen(t, "127.0.0.1:0")
	for i := range 3 { // again and again from the same port
		got, err := ep.Discover(context.Background(), ln.Addr().(*net.TCPAddr).AddrPort(), 0)
		if err != nil {
			t.Fatalf("try %d: %v", i, err)
		}
		if got != ep.LocalAddr() {
			t.Fatalf("try %d: mapped %v, want %v", i, got, ep.LocalAddr())
		}
	}
	cs, err := ep.Candidates(netip.MustParseAddrPort("192.0.2.7:5555"))
	if err != nil {
		t.Fatal(err)
	}
	if last := cs[len(cs)-1]; last.Kind != xtcp.ServerReflexive || last.Addr.String() != "192.0.2.7:5555" {
		t.Errorf("candidates %v end without the srflx one", cs)
	}
	for _, c := range cs[:len(cs)-1] {
		if c.Kind != xtcp.Host || c.Addr.Port() != ep.Port() || c.Addr.Addr().IsLoopback() {
			t.Errorf("host candidate %v", c)
		}
	}
	// Not STUN at all: a clear error.
	bogus, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer bogus.Close() // before wg.Wait
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := bogus.Accept()
		if err == nil {
			fmt.Fprint(c, "HTTP/1.1 400 Bad Request\r\n\r\n")
			c.Close()
		}
	}()
	if _, err := ep.Discover(context.Background(), bogus.Addr().(*net.TCPAddr).AddrPort(), time.Second); !errors.Is(err, ErrSTUN) {
		t.Errorf("non-STUN answer: %v, want ErrSTUN", err)
	}
}

// The carrier is a link's carrier.
var _ xtcp.Carrier = (*Carrier)(nil)

// When only the visitor's dials can reach the owner (the owner dials a
// dead port), the owner's listener accepts the connection, and a stranger
// that connects and writes junk first is refused without ending the punch.
func TestPunchByAccept(t *testing.T) {
	ev, eo := listen(t, "127.0.0.1:0"), listen(t, "127.0.0.1:0")
	dead := listen(t, "127.0.0.1:0")
	deadPort := dead.Port()
	dead.Close()
	junk, err := net.Dial("tcp4", eo.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer junk.Close()
	junk.Write(bytes.Repeat([]byte("GET / HTTP/1.1\r\n"), 4))
	v, o := punchPair(t, ev, eo, []xtcp.Candidate{{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), deadPort), Kind: xtcp.Host}},
		cands(eo, "127.0.0.1"), nil)
	if v.err != nil || o.err != nil {
		t.Fatalf("visitor %v, owner %v", v.err, o.err)
	}
	if !o.c.Accepted() || v.c.Accepted() {
		t.Errorf("accepted: owner %v, visitor %v; want the owner's listener to have taken it", o.c.Accepted(), v.c.Accepted())
	}
	if o.c.Path().Kind != xtcp.PeerReflexive || o.c.Path().Addr != v.c.LocalAddr() {
		t.Errorf("owner's path %v, want prflx %v", o.c.Path(), v.c.LocalAddr())
	}
	if err := o.c.SendPacket([]byte("back")); err != nil {
		t.Fatal(err)
	}
	if got, err := recvWithin(t, v.c, 5*time.Second); err != nil || string(got) != "back" {
		t.Fatalf("%q %v", got, err)
	}
}
