package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hopproxy/hop/pkg/control"
	"github.com/hopproxy/hop/pkg/protocol"
)

// testShare stands for a visitor's CPace share, which the server forwards
// unread (an offer without one does not encode).
var testShare = make([]byte, protocol.ShareSize)

// pipeSession is a session whose control channel ends in a pipe; the
// client end is read into msgs when read is true, and never read otherwise
// (a client that stopped reading).
func pipeSession(t *testing.T, id string, read bool) (*session, <-chan protocol.Message, func()) {
	a, b := net.Pipe()
	ss := &session{clientID: id, id: id, ch: control.New(a), log: slog.New(slog.DiscardHandler), proxies: map[string]*proxy{}}
	msgs := make(chan protocol.Message, 1024)
	if !read { // nothing reads b: the writer blocks until b is closed
		return ss, msgs, func() { b.Close(); ss.ch.Close() }
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := protocol.ReadMsg(b)
			if err != nil {
				return
			}
			msgs <- m
		}
	}()
	return ss, msgs, func() { ss.ch.Close(); b.Close(); <-done }
}

// TestP2POfferNeverWaitsOnOwner: the owner of a secret proxy stops reading
// its control stream; a visitor's offers must not stall the visitor's read
// loop (before: 5 s per offer once the owner's queue of 64 was full). Under
// synctest, no fake time may pass while 200 offers are handled.
func TestP2POfferNeverWaitsOnOwner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := testServer(t)
		s.cfg.Limits.MaxP2PAttemptsPerClient = 1000
		s.cfg.Limits.MaxP2POffersPerProxy = 1000
		owner, _, closeOwner := pipeSession(t, "owner", false)
		defer closeOwner()
		visitor, answers, closeVisitor := pipeSession(t, "visitor", true)
		defer closeVisitor()
		s.proxies[proxyKey{name: "x"}] = &proxy{name: "x", typ: protocol.ProxyXTCP, owner: owner}
		start := time.Now()
		for i := range 200 {
			s.p2pOffer(visitor, &protocol.P2POffer{ID: fmt.Sprint(i), Proxy: "x", ProxyType: protocol.ProxyXTCP, NAT: "EIM/EIF", Share: testShare})
		}
		if waited := time.Since(start); waited != 0 {
			t.Fatalf("the visitor's read loop waited %v on an owner that does not read", waited)
		}
		if s.P2PDropped() == 0 {
			t.Fatal("no offer was dropped although the owner reads nothing")
		}
		synctest.Wait()
		refused := 0
		for len(answers) > 0 {
			if a, ok := (<-answers).(*protocol.P2PAnswer); ok && strings.Contains(a.Error, "control queue is full") {
				refused++
			}
		}
		if int64(refused) != s.P2PDropped() {
			t.Fatalf("%d visitors told, %d offers dropped", refused, s.P2PDropped())
		}
		t.Logf("200 offers to an owner that does not read: %d forwarded, %d refused at once", 200-refused, refused)
	})
}

// TestP2PQuotas: one client cannot hold more than maxP2PAttemptsPerClient
// attempts, nor one proxy more than maxP2POffersPerProxy unanswered offers.
func TestP2PQuotas(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := testServer(t)
		s.cfg.Limits.MaxP2PAttemptsPerClient = 5
		s.cfg.Limits.MaxP2POffersPerProxy = 3
		owner, fwd, closeOwner := pipeSession(t, "owner", true)
		defer closeOwner()
		v1, a1, close1 := pipeSession(t, "v1", true)
		defer close1()
		v2, a2, close2 := pipeSession(t, "v2", true)
		defer close2()
		for _, n := range []string{"x", "y"} {
			s.proxies[proxyKey{name: n}] = &proxy{name: n, typ: protocol.ProxyXTCP, owner: owner}
		}
		offer := func(v *session, proxy string, i int) {
			s.p2pOffer(v, &protocol.P2POffer{ID: fmt.Sprint(i), Proxy: proxy, ProxyType: protocol.ProxyXTCP, Share: testShare})
		}
		for i := range 4 {
			offer(v1, "x", i) // the fourth is over the proxy's 3
		}
		synctest.Wait()
		if len(fwd) != 3 || len(a1) != 1 {
			var why string
			if len(a1) > 0 {
				why = (<-a1).(*protocol.P2PAnswer).Error
			}
			t.Fatalf("proxy x: %d forwarded, %d refused (%s)", len(fwd), len(a1), why)
		}
		if a := (<-a1).(*protocol.P2PAnswer); !strings.Contains(a.Error, "limits.maxP2POffersPerProxy") {
			t.Fatalf("refusal %q", a.Error)
		}
		for i := range 4 {
			offer(v1, "y", 10+i) // v1 has 3; two more reach its quota of 5
		}
		synctest.Wait()
		if len(fwd) != 5 || len(a1) != 2 {
			t.Fatalf("v1 on y: %d forwarded, %d refused", len(fwd), len(a1))
		}
		if a := (<-a1).(*protocol.P2PAnswer); !strings.Contains(a.Error, "limits.maxP2PAttemptsPerClient") {
			t.Fatalf("refusal %q", a.Error)
		}
		// Another client is not held back by v1's quota, only by y's cap
		// (y has 2 waiting): one more fits.
		offer(v2, "y", 20)
		synctest.Wait()
		if len(fwd) != 6 || len(a2) != 0 {
			t.Fatalf("v2: %d forwarded, %d refused", len(fwd), len(a2))
		}
		// An answered offer no longer counts against the proxy's cap.
		var first *protocol.P2POffer
		for len(fwd) > 0 {
			if o, ok := (<-fwd).(*protocol.P2POffer); ok && o.Proxy == "x" && first == nil {
				first = o
			}
		}
		s.p2p.mu.Lock()
		s.p2p.attempts[first.SessionID].answered = true
		s.p2p.mu.Unlock()
		offer(v2, "x", 21)
		synctest.Wait()
		if len(fwd) != 1 {
			t.Fatalf("after an answer, x takes no new offer: %d forwarded, %d refused", len(fwd), len(a2))
		}
	})
}

// TestTallyKeysBounded: NAT classes the server does not know become
// "unknown", so clients cannot grow the tally with made-up strings.
func TestTallyKeysBounded(t *testing.T) {
	s := testServer(t)
	v := &session{clientID: "v", log: slog.New(slog.DiscardHandler)}
	o := &session{clientID: "o"}
	for i := range 500 {
		id := fmt.Sprint(i)
		s.p2p.attempts[id] = &attempt{session: id, visitor: v, owner: o, visitorNAT: fmt.Sprintf("junk-%d", i), ownerNAT: "EIM/APDF", created: time.Now()}
		s.p2pResult(v, &protocol.P2PResult{SessionID: id, Outcome: "direct", NAT: fmt.Sprintf("junk-%d", i)})
	}
	s.p2p.attempts["k"] = &attempt{session: "k", visitor: v, owner: o, visitorNAT: "APDM/?F", ownerNAT: "none", created: time.Now()}
	s.p2pResult(v, &protocol.P2PResult{SessionID: "k", Outcome: "relay"})
	rows := s.P2PTally()
	if len(rows) != 2 || rows[0].VisitorNAT != "APDM/?F" || rows[1].VisitorNAT != "unknown" || rows[1].Attempts != 500 {
		t.Fatalf("tally %+v", rows)
	}
}

// TestHistoryBounded: the history keeps the maxHistory most recently ended
// client IDs.
func TestHistoryBounded(t *testing.T) {
	h := newHistory(3)
	now := time.Unix(0, 0)
	for i, id := range []string{"a", "b", "c", "a", "d", "e"} {
		h.record(clientKey{"", id}, errors.New(id), now.Add(time.Duration(i)*time.Second), sessionInfo{})
	}
	got := h.snapshot()
	if len(got) != 3 || got["a"].Sessions != 2 || got["d"].Sessions != 1 || got["e"].LastEnd != now.Add(5*time.Second) {
		t.Fatalf("history %+v", got)
	}
	if _, ok := got["b"]; ok {
		t.Fatal("kept the oldest entry")
	}
	// The losses of one client are bounded too, the oldest dropped.
	for i := range 3 * maxLosses {
		h.record(clientKey{"", "a"}, fmt.Errorf("loss %d", i), now, sessionInfo{})
	}
	l := h.snapshot()["a"].Losses
	if len(l) != maxLosses || l[0].Cause != fmt.Sprint("loss ", 2*maxLosses) || l[maxLosses-1].Cause != fmt.Sprint("loss ", 3*maxLosses-1) {
		t.Fatalf("%d losses kept (bound %d): first %+v, last %+v", len(l), maxLosses, l[0], l[len(l)-1])
	}
	s := testServer(t)
	for i := range 3 * maxHistory {
		s.history.record(clientKey{"", fmt.Sprint(i)}, nil, time.Now(), sessionInfo{})
	}
	if n := len(s.History()); n != maxHistory {
		t.Fatalf("%d client IDs remembered, bound %d", n, maxHistory)
	}
}

// TestJunkVisitorStreamsLogOnce: a client that opens stream after stream
// of junk (no Visit frame) gets one WARN line, not one per stream; every
// stream is still closed.
func TestJunkVisitorStreamsLogOnce(t *testing.T) {
	s := testServer(t)
	ss, _, closeSS := pipeSession(t, "junk", true)
	defer closeSS()
	var out strings.Builder
	var mu sync.Mutex
	ss.log = slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return out.Write(p)
	}), nil))
	const n = 200
	for range n {
		a, b := net.Pipe()
		go func() {
			b.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
			io.Copy(io.Discard, b) // until serveVisit closes its end
			b.Close()
		}()
		s.connWG.Add(1)
		s.serveVisit(ss, a)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Count(out.String(), `msg="bad visitor stream"`); got != 1 {
		t.Fatalf("%d lines for %d junk streams:\n%s", got, n, out.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestSessionNAT: the NAT class a client reports in P2P messages is kept
// for the API, an unknown one as "unknown", an empty one ignored.
func TestSessionNAT(t *testing.T) {
	ss := &session{proxies: map[string]*proxy{}}
	for _, tc := range []struct{ in, want string }{{"EIM/EIF", "EIM/EIF"}, {"", "EIM/EIF"}, {"bogus", "unknown"}} {
		ss.noteNAT(tc.in)
		if got := ss.info().nat; got != tc.want {
			t.Errorf("after %q: nat %q, want %q", tc.in, got, tc.want)
		}
	}
}
