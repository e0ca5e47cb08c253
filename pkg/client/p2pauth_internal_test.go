package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/control"
	"github.com/hopproxy/hop/pkg/pake"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/visit"
)

// These tests play the server (and the other client) of a P2P attempt
// against one real Client, over its control channel, on loopback only.

// fakeServer is the server end of a client's control channel.
type fakeServer struct {
	t    *testing.T
	c    *Client
	in   chan protocol.Message // what the client sent
	stun *net.UDPConn          // the client's STUN target: counts the packets it gets
}

func (f *fakeServer) next(what string) protocol.Message {
	f.t.Helper()
	select {
	case m := <-f.in:
		return m
	case <-time.After(20 * time.Second):
		f.t.Fatalf("no %s from the client", what)
		return nil
	}
}

// testClient is a Client with one xtcp proxy "ssh" (as owner, user bob)
// and one visitor of it (as user alice, client laptop), logged in to a
// fakeServer.
func testClient(t *testing.T, secret, user, id string) (*Client, *fakeServer) {
	t.Helper()
	stun, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stun.Close() })
	cfg := config.DefaultClient()
	cfg.ServerAddr, cfg.ServerPort = "127.0.0.1", stun.LocalAddr().(*net.UDPAddr).Port
	cfg.Auth.Token = "a-test-token-that-is-long-enough"
	cfg.User, cfg.ClientID = user, id
	p := config.DefaultProxy(config.ProxyXTCP)
	p.Name, p.LocalPort, p.SecretKey = "ssh", 1, secret
	p.AllowUsers = []string{visitorIdent.VisitorUser} // the owner checks allowUsers too
	cfg.Proxies = []config.ProxyConfig{p}
	c, err := New(&cfg, slog.New(slog.NewTextHandler(testLogOut, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	ch := control.New(a)
	n := &node{addr: "127.0.0.1:1", endpoint: "127.0.0.1:1", name: "fake"}
	c.addNode(n)
	lv := &live{ch: ch}
	c.setLive(n, lv)
	f := &fakeServer{t: t, c: c, in: make(chan protocol.Message, 16), stun: stun}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := protocol.ReadMsg(b)
			if err != nil {
				return
			}
			f.in <- m
		}
	}()
	t.Cleanup(func() {
		c.connWG.Wait()
		ch.Close()
		b.Close()
		<-done
	})
	return c, f
}

// victim is an address of the attacker's choice: it counts what arrives.
func victim(t *testing.T) (*net.UDPConn, protocol.Candidate) {
	v, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v, protocol.Candidate{Kind: "srflx", Addr: v.LocalAddr().String()}
}

// pending counts the datagrams already queued on u (loopback delivers a
// datagram into the socket's queue before the send returns). The deadline
// is a little in the future: a past one fails a read even with data queued.
func pending(u *net.UDPConn) int {
	n := 0
	buf := make([]byte, 2048)
	for {
		u.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, _, err := u.ReadFromUDP(buf); err != nil {
			return n
		}
		n++
	}
}

var (
	visitorIdent = visit.Identity{Proxy: "ssh", ProxyType: "xtcp", VisitorUser: "alice", VisitorID: "laptop", OwnerUser: "bob"}
	testSession  = "00112233445566778899aabbccddeeff"
)

// offer is what a visitor with secret sends (through the server, which
// adds the session ID and the visitor's identity).
func offer(secret, sessionID, clearNAT string) (*protocol.P2POffer, *pake.State) {
	ps := pake.Start(pake.Initiator, []byte(secret), visitorIdent.Channel(p2pChannel), []byte("0123456789abcdef"), nil)
	return &protocol.P2POffer{ID: "0123456789abcdef", Proxy: "ssh", ProxyType: "xtcp", Visitor: "laptop", VisitorUser: "alice",
		SessionID: sessionID, NAT: clearNAT, Share: ps.Share()}, ps
}

// TestP2POfferWithWrongSecretGetsNothing: a token holder that passes
// allowUsers but does not know the secret offers, claiming a hard NAT, and
// goes on as if its key were right, naming an address of its choice. The
// owner reveals no candidate, opens no socket and sends zero packets — no
// probe, no birthday spray, not even STUN.
func TestP2POfferWithWrongSecretGetsNothing(t *testing.T) {
	c, f := testClient(t, "the-owners-secret", "bob", "server-box")
	target, cand := victim(t)
	o, ps := offer("a-guessed-secret", testSession, "APDM/APDF")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.connWG.Add(1)
	go c.ownerOffer(ctx, c.peekLive(), o)

	auth, ok := f.next("P2PAuth").(*protocol.P2PAuth)
	if !ok || len(auth.Share) != protocol.ShareSize || auth.Sealed != nil {
		t.Fatalf("owner's first answer: %+v, want its share and tag only", auth)
	}
	isk, err := ps.Finish(auth.Share, []byte(auth.SessionID))
	if err != nil {
		t.Fatal(err)
	}
	if pake.Verify(isk, pake.Responder, auth.Tag) {
		t.Fatal("the owner's tag verified under the wrong secret")
	}
	box, err := sealInfo(isk, infoBoxVisitor, testSession, &protocol.P2PInfo{Candidates: []protocol.Candidate{cand}, NAT: "APDM/APDF", Link: testLink})
	if err != nil {
		t.Fatal(err)
	}
	c.waits.deliver(&protocol.P2PAuth{SessionID: testSession, Tag: pake.Confirm(isk, pake.Initiator), Sealed: box})
	ans, ok := f.next("P2PAnswer").(*protocol.P2PAnswer)
	if !ok || ans.Error == "" || ans.Sealed != nil {
		t.Fatalf("owner's answer: %+v, want a refusal without candidates", ans)
	}
	if !strings.Contains(ans.Error, "could not prove") {
		t.Fatalf("refusal %q does not say why", ans.Error)
	}
	c.waits.deliver(&protocol.P2PGo{SessionID: testSession}) // a go anyway: nobody waits for it
	c.connWG.Wait()
	if n, s := pending(target), pending(f.stun); n != 0 || s != 0 {
		t.Fatalf("the owner sent %d packets to the attacker's address and %d to STUN, want 0", n, s)
	}
}

// testLink is the link ID the tests' visitors name.
const testLink = "00112233445566778899aabbccddeeff"

// completeExchange runs the visitor's side of the offer exchange with the
// right secret against c as owner and returns the ISK and the owner's
// P2PInfo.
func completeExchange(t *testing.T, c *Client, f *fakeServer, secret, sessionID string, mine protocol.Candidate) ([]byte, *protocol.P2PInfo) {
	t.Helper()
	o, ps := offer(secret, sessionID, "EIM/EIF")
	c.connWG.Add(1)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go c.ownerOffer(ctx, c.peekLive(), o)
	auth, ok := f.next("P2PAuth").(*protocol.P2PAuth)
	if !ok {
		t.Fatalf("owner's first answer: %+v", auth)
	}
	isk, err := ps.Finish(auth.Share, []byte(auth.SessionID))
	if err != nil {
		t.Fatal(err)
	}
	if !pake.Verify(isk, pake.Responder, auth.Tag) {
		t.Fatal("the owner's tag does not verify under the right secret")
	}
	box, _ := sealInfo(isk, infoBoxVisitor, sessionID, &protocol.P2PInfo{Candidates: []protocol.Candidate{mine}, NAT: "EIM/EIF", Link: testLink})
	c.waits.deliver(&protocol.P2PAuth{SessionID: sessionID, Tag: pake.Confirm(isk, pake.Initiator), Sealed: box})
	ans, ok := f.next("P2PAnswer").(*protocol.P2PAnswer)
	if !ok || ans.Error != "" {
		t.Fatalf("owner's answer: %+v", ans)
	}
	info, err := openInfo(isk, infoBoxOwner, sessionID, ans.Sealed)
	if err != nil {
		t.Fatalf("owner's sealed info: %v", err)
	}
	return isk, info
}

// TestP2POfferWithRightSecret is the control of the test above: with the
// secret, the owner reveals itself (sealed) and punches toward the
// visitor's sealed candidate.
func TestP2POfferWithRightSecret(t *testing.T) {
	c, f := testClient(t, "the-owners-secret", "bob", "server-box")
	target, cand := victim(t)
	completeExchange(t, c, f, "the-owners-secret", testSession, cand)
	c.waits.deliver(&protocol.P2PGo{SessionID: testSession})
	deadline := time.Now().Add(10 * time.Second)
	for pending(target) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the owner did not probe the visitor's candidate")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestP2PSessionIDReuse: the same session ID twice (a malicious server or
// an impostor replaying an attempt) is refused the second time; two
// attempts with one session ID and one secret, on clients that have not
// seen it, still get different keys (both sides' randomness is in them),
// so their frames never open in each other.
func TestP2PSessionIDReuse(t *testing.T) {
	const secret = "the-owners-secret"
	_, cand := victim(t)
	c1, f1 := testClient(t, secret, "bob", "server-box")
	isk1, _ := completeExchange(t, c1, f1, secret, testSession, cand)
	c1.waits.deliver(&protocol.P2PGo{SessionID: testSession})

	o, _ := offer(secret, testSession, "EIM/EIF")
	c1.connWG.Add(1)
	go c1.ownerOffer(context.Background(), c1.peekLive(), o)
	m := f1.next("refusal")
	for {
		if _, ok := m.(*protocol.P2PResult); !ok { // the first attempt's result may come first
			break
		}
		m = f1.next("refusal")
	}
	if ans, ok := m.(*protocol.P2PAnswer); !ok || !strings.Contains(ans.Error, "used before") {
		t.Fatalf("replayed session ID: %+v, want a refusal", m)
	}

	c2, f2 := testClient(t, secret, "bob", "server-box")
	isk2, _ := completeExchange(t, c2, f2, secret, testSession, cand)
	c2.waits.deliver(&protocol.P2PGo{SessionID: testSession})
	if string(attemptKey(isk1)) == string(attemptKey(isk2)) {
		t.Fatal("two attempts with the same session ID and secret have the same key")
	}
	// That frames under two attempt keys never open in each other is
	// pkg/xtcp's TestFramesDoNotCrossAttempts.
}

// TestP2PVisitorRefusesImpostorOwner: the visitor's offer reaches a client
// that does not know the secret (or claims the proxy under another user):
// it cannot confirm, and the visitor reveals no candidates.
func TestP2PVisitorRefusesImpostorOwner(t *testing.T) {
	for _, tt := range []struct {
		name   string
		secret string
		owner  string
	}{
		{"wrong secret", "a-guessed-secret", "bob"},
		{"another user's proxy of that name", "the-owners-secret", "mallory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, f := testClient(t, "the-owners-secret", "alice", "laptop")
			vc := config.DefaultVisitor(config.ProxyXTCP)
			vc.Name, vc.ServerName, vc.SecretKey, vc.ServerUser = "ssh-visitor", "ssh", "the-owners-secret", "bob"
			v := &visitor{c: c, cfg: vc, log: c.log}
			l := newP2PLink(v)
			defer l.close()
			errc := make(chan error, 1)
			go func() { errc <- l.attempt(&linkConn{}) }()
			o, ok := f.next("P2POffer").(*protocol.P2POffer)
			if !ok {
				t.Fatalf("visitor's offer: %+v", o)
			}
			imp := visitorIdent
			imp.OwnerUser = tt.owner
			ps := pake.Start(pake.Responder, []byte(tt.secret), imp.Channel(p2pChannel), []byte(o.ID), []byte(testSession))
			isk, err := ps.Finish(o.Share, nil)
			if err != nil {
				t.Fatal(err)
			}
			c.waits.deliver(&protocol.P2PAuth{ID: o.ID, SessionID: testSession, Share: ps.Share(), Tag: pake.Confirm(isk, pake.Responder)})
			if err := <-errc; !errors.Is(err, errP2PUnconfirmed) {
				t.Fatalf("attempt: %v, want errP2PUnconfirmed", err)
			}
			select {
			case m := <-f.in:
				t.Fatalf("the visitor sent %T after a failed confirmation", m)
			default:
			}
		})
	}
}

func TestP2PGuard(t *testing.T) {
	var g p2pGuard
	now := time.Now()
	if !g.fresh("a", now) || g.fresh("a", now) {
		t.Fatal("a reused session ID was not refused")
	}
	for i := range maxSeenSessions {
		g.fresh(fmt.Sprint(i), now)
	}
	if len(g.seen) > maxSeenSessions {
		t.Fatalf("%d session IDs remembered, bound %d", len(g.seen), maxSeenSessions)
	}
	var rel []func()
	for i := range maxOffersPerVisitor {
		r, err := g.admit("ssh", "alice/laptop")
		if err != nil {
			t.Fatalf("offer %d: %v", i, err)
		}
		rel = append(rel, r)
	}
	if _, err := g.admit("ssh", "alice/laptop"); !errors.Is(err, errTooManyOffers) {
		t.Fatalf("offer over the per-visitor cap: %v", err)
	}
	for i := maxOffersPerVisitor; i < maxOffersPerProxy; i++ {
		r, err := g.admit("ssh", fmt.Sprintf("v%d/c", i))
		if err != nil {
			t.Fatalf("offer %d: %v", i, err)
		}
		rel = append(rel, r)
	}
	if _, err := g.admit("ssh", "someone/else"); !errors.Is(err, errTooManyOffers) {
		t.Fatalf("offer over the per-proxy cap: %v", err)
	}
	for _, r := range rel {
		r()
		r() // idempotent
	}
	if _, err := g.admit("ssh", "alice/laptop"); err != nil || len(g.perProxy) != 1 {
		t.Fatalf("after release: %v, %v", err, g.perProxy)
	}
}

var testLogOut io.Writer = io.Discard

// TestP2PVisitorRefusesReplayedSession: an owner (or a server) that
// answers a second offer with a session ID the visitor already used gets
// no candidates, even with the right secret; a client that owns the proxy
// it visits (both roles see the one session ID) is not refused.
func TestP2PVisitorRefusesReplayedSession(t *testing.T) {
	c, f := testClient(t, "the-owners-secret", "alice", "laptop")
	c.replays.fresh("owner/"+testSession, time.Now()) // this client also owned the attempt
	vc := config.DefaultVisitor(config.ProxyXTCP)
	vc.Name, vc.ServerName, vc.SecretKey, vc.ServerUser = "ssh-visitor", "ssh", "the-owners-secret", "bob"
	v := &visitor{c: c, cfg: vc, log: c.log}
	l := newP2PLink(v)
	defer l.close()
	for round := range 2 {
		errc := make(chan error, 1)
		go func() { errc <- l.attempt(&linkConn{}) }()
		o, ok := f.next("P2POffer").(*protocol.P2POffer)
		if !ok {
			t.Fatalf("visitor's offer: %+v", o)
		}
		ps := pake.Start(pake.Responder, []byte("the-owners-secret"), visitorIdent.Channel(p2pChannel), []byte(o.ID), []byte(testSession))
		isk, err := ps.Finish(o.Share, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.waits.deliver(&protocol.P2PAuth{ID: o.ID, SessionID: testSession, Share: ps.Share(), Tag: pake.Confirm(isk, pake.Responder)})
		if round == 0 {
			a, ok := f.next("the visitor's P2PAuth").(*protocol.P2PAuth)
			if !ok || !pake.Verify(isk, pake.Initiator, a.Tag) {
				t.Fatalf("round 0: visitor's confirmation %+v", a)
			}
			if _, err := openInfo(isk, infoBoxVisitor, testSession, a.Sealed); err != nil {
				t.Fatalf("round 0: visitor's sealed info: %v", err)
			}
			c.waits.deliver(&protocol.P2PAnswer{ID: o.ID, Code: protocol.CodeBadRequest, Error: "stop here"})
			if err := <-errc; err == nil || !strings.Contains(err.Error(), "stop here") {
				t.Fatalf("round 0: %v", err)
			}
			continue
		}
		if err := <-errc; !errors.Is(err, errReplayedSession) {
			t.Fatalf("replayed session: %v, want errReplayedSession", err)
		}
		select {
		case m := <-f.in:
			t.Fatalf("the visitor sent %T for a replayed session", m)
		default:
		}
	}
}

// TestP2PResultErrorBounded: an attempt whose reasons (UDP and TCP, every
// candidate) run long still sends a result the server takes: the server
// ends a session over a malformed one.
func TestP2PResultErrorBounded(t *testing.T) {
	c, f := testClient(t, "the-owners-secret", "alice", "laptop")
	long := strings.Repeat("no answer from 198.51.100.23:4000 (i/o timeout) é; ", 40)
	c.sendResult(&protocol.P2PResult{SessionID: testSession, Role: "visitor", Outcome: "failed", Error: long})
	r, ok := f.next("P2PResult").(*protocol.P2PResult)
	if !ok {
		t.Fatalf("got %+v", r)
	}
	if len(r.Error) > protocol.MaxResultError || !strings.HasPrefix(long, strings.TrimSuffix(r.Error, " …")) || !utf8.ValidString(r.Error) {
		t.Fatalf("error of %d bytes: %q", len(r.Error), r.Error)
	}
}
