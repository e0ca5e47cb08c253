package server

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/auth"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/mux"
	"github.com/hopproxy/hop/pkg/protocol"
)

func testServer(t *testing.T) *Server {
	t.Helper()
	cfg := config.DefaultServer()
	cfg.Auth.Token = "t"
	cfg.NodeName = "test-node" // the node label of every series
	s, err := New(&cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDecideRequiresHeartbeat(t *testing.T) {
	s := testServer(t)
	if _, e := s.decide(&protocol.ClientHello{ClientID: "c", HeartbeatIntervalMs: 0}); e == nil ||
		e.Code != protocol.CodeHeartbeatRequired || !strings.Contains(e.Message, `set heartbeat.interval to 10s or less`) {
		t.Fatalf("no heartbeat: %+v", e)
	}
	w, e := s.decide(&protocol.ClientHello{ClientID: "c", HeartbeatIntervalMs: 10000})
	if e != nil || w.HeartbeatTimeoutMs != 30000 || w.SessionID == "" {
		t.Fatalf("welcome %+v, refusal %+v", w, e)
	}
	s.cfg.Heartbeat.Timeout = config.Dur(0) // a server that checks no heartbeat takes any client
	if _, e := s.decide(&protocol.ClientHello{ClientID: "c"}); e != nil {
		t.Fatalf("refused without a heartbeat check: %+v", e)
	}
}

func TestLookupSecret(t *testing.T) {
	s := testServer(t)
	alice := &session{user: "alice", clientID: "a1", proxies: map[string]*proxy{}}
	bob := &session{user: "bob", clientID: "b1", proxies: map[string]*proxy{}}
	carol := &session{user: "carol", clientID: "c1"}
	add := func(owner *session, name, typ string, allow ...string) {
		p := &proxy{name: name, typ: typ, owner: owner, allow: allow}
		s.proxies[p.key()] = p
	}
	add(alice, "x", protocol.ProxyXTCP, "bob")
	add(alice, "own", protocol.ProxySTCP) // empty allowUsers: alice's own visitors only
	add(alice, "any", protocol.ProxySTCP, "*")
	add(alice, "web", protocol.ProxyTCP)
	add(bob, "x", protocol.ProxyXTCP) // the same name under another user
	hidden := `has no secret proxy`
	for _, tt := range []struct {
		visitor          *session
		serverUser, name string
		typ              string
		want             string // "" = found
		wantOwner        *session
	}{
		{alice, "", "own", protocol.ProxySTCP, "", alice},
		{alice, "alice", "own", protocol.ProxySTCP, "", alice},
		{bob, "alice", "own", protocol.ProxySTCP, hidden, nil},
		{bob, "alice", "x", protocol.ProxyXTCP, "", alice},
		{carol, "alice", "x", protocol.ProxyXTCP, hidden, nil},
		{carol, "alice", "any", protocol.ProxySTCP, "", alice},
		{bob, "", "x", protocol.ProxyXTCP, "", bob}, // bob's own x, not alice's
		{alice, "bob", "x", protocol.ProxyXTCP, hidden, nil},
		{alice, "", "x", protocol.ProxySTCP, "use the same type on both sides", nil},
		{alice, "", "nope", protocol.ProxyXTCP, `no proxy named "alice.nope"`, nil},
		{alice, "", "web", protocol.ProxySTCP, "public port, not a secret proxy", nil},
		{bob, "alice", "nope", protocol.ProxyXTCP, hidden, nil},
		{bob, "alice", "web", protocol.ProxySTCP, hidden, nil},
	} {
		p, e := s.lookupSecret(tt.visitor, tt.serverUser, tt.name, tt.typ)
		name := tt.visitor.user + "->" + qualify(tt.serverUser, tt.name)
		switch {
		case tt.want == "" && e != nil:
			t.Errorf("%s: refused: %s", name, e.Message)
		case tt.want == "" && p.owner != tt.wantOwner:
			t.Errorf("%s: got the proxy of %s", name, p.owner.user)
		case tt.want != "" && (e == nil || !strings.Contains(e.Message, tt.want)):
			t.Errorf("%s: got %v, want %q", name, e, tt.want)
		}
	}
	// A visitor of another user learns nothing from the refusal: absent,
	// public and not-allowed proxies read the same.
	_, e1 := s.lookupSecret(bob, "alice", "nope", protocol.ProxySTCP)
	_, e2 := s.lookupSecret(bob, "alice", "own", protocol.ProxySTCP)
	_, e3 := s.lookupSecret(bob, "alice", "web", protocol.ProxySTCP)
	if e1.Message != strings.Replace(e2.Message, `"own"`, `"nope"`, 1) || e1.Message != strings.Replace(e3.Message, `"web"`, `"nope"`, 1) {
		t.Errorf("refusals differ:\n%s\n%s\n%s", e1.Message, e2.Message, e3.Message)
	}
}

func hello(user, clientID string, key ed25519.PublicKey) *protocol.ClientHello {
	return &protocol.ClientHello{User: user, ClientID: clientID, IdentityKey: key, HeartbeatIntervalMs: 10000}
}

// A live (user, clientID) is refused to a login with another identity
// key, and taken over by one with the same key.
func TestDecideClientIDInUse(t *testing.T) {
	s := testServer(t)
	k1, k2 := auth.NewIdentity().Public(), auth.NewIdentity().Public()
	s.sessions[clientKey{"alice", "c"}] = &session{user: "alice", clientID: "c", identity: k1}
	if _, e := s.decide(hello("alice", "c", k2)); e == nil || e.Code != protocol.CodeClientIDInUse ||
		!strings.Contains(e.Message, `client ID "c" of user "alice"`) || !strings.Contains(e.Message, "heartbeat.timeout is 30s") {
		t.Fatalf("other key: %+v", e)
	}
	if _, e := s.decide(hello("alice", "c", k1)); e != nil {
		t.Fatalf("same key: %+v", e)
	}
	if _, e := s.decide(hello("bob", "c", k2)); e != nil {
		t.Fatalf("another user with the same client ID: %+v", e)
	}
	if _, e := s.decide(hello("", "c", k2)); e != nil {
		t.Fatalf("the empty user with the same client ID: %+v", e)
	}
}

// liveSession is a session with a real mux over a pipe, whose run loop
// stands in for handle: it unregisters when the mux ends.
func liveSession(t *testing.T, s *Server, user, clientID string, key ed25519.PublicKey) *session {
	t.Helper()
	a, b := net.Pipe()
	ms, err := mux.Server(a, mux.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	peer, err := mux.Client(b, mux.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close(); peer.Close() })
	ss := &session{srv: s, user: user, clientID: clientID, identity: key, ms: ms, id: clientID + "-" + user,
		log: slog.New(slog.DiscardHandler), ended: make(chan struct{}), proxies: map[string]*proxy{}}
	return ss
}

func TestRegister(t *testing.T) {
	s := testServer(t)
	k1, k2 := auth.NewIdentity().Public(), auth.NewIdentity().Public()
	first := liveSession(t, s, "alice", "c", k1)
	if err := s.register(first); err != nil {
		t.Fatal(err)
	}
	go func() { <-first.ms.Done(); s.unregister(first, first.ms.Err()) }()

	// Another process (key) with the same user and client ID: refused,
	// and the live session is untouched.
	other := liveSession(t, s, "alice", "c", k2)
	if err := s.register(other); !errors.Is(err, ErrClientIDInUse) {
		t.Fatalf("other key: %v", err)
	}
	select {
	case <-first.ms.Done():
		t.Fatal("the refused login closed the live session")
	default:
	}
	if s.sessions[clientKey{"alice", "c"}] != first {
		t.Fatal("the live session lost its slot")
	}

	// The same process reconnecting replaces it at once.
	again := liveSession(t, s, "alice", "c", k1)
	if err := s.register(again); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(first.ms.Err(), ErrReplaced) || s.sessions[clientKey{"alice", "c"}] != again {
		t.Fatalf("old session cause %v; slot holds %p, want %p", first.ms.Err(), s.sessions[clientKey{"alice", "c"}], again)
	}
	// Another user's client of the same ID is a different client.
	bob := liveSession(t, s, "bob", "c", k2)
	if err := s.register(bob); err != nil {
		t.Fatalf("bob: %v", err)
	}
}

func TestTally(t *testing.T) {
	s := testServer(t)
	v := &session{clientID: "v"}
	o := &session{clientID: "o"}
	record := func(id, vnat, onat, outcome string, ms int64) {
		s.p2p.attempts[id] = &attempt{session: id, visitor: v, owner: o, visitorNAT: vnat, ownerNAT: onat, created: time.Now()}
		v.log = slog.New(slog.DiscardHandler)
		s.p2pResult(v, &protocol.P2PResult{SessionID: id, Role: "visitor", Outcome: outcome, ElapsedMs: ms})
	}
	record("a", "EIM/APDF", "EIM/APDF", "direct", 50)
	record("b", "EIM/APDF", "EIM/APDF", "lan", 30)
	record("c", "APDM/APDF", "APDM/APDF", "failed", 7000)
	rows := s.P2PTally()
	if len(rows) != 2 || rows[0].VisitorNAT != "APDM/APDF" || rows[0].Relay != 1 || rows[1].Direct != 1 || rows[1].LAN != 1 || rows[1].AvgToDirectMs != 40 {
		t.Fatalf("tally %+v", rows)
	}
	table := TallyTable(rows)
	for _, want := range []string{"visitor NAT", "APDM/APDF", "40ms", "-"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if len(s.p2p.attempts) != 0 {
		t.Fatal("finished attempts are kept")
	}
}

// Proxy names are per user: alice and bob may both have "db"; a second
// session of alice may not take alice's; one session registering a name
// twice is a bad request (permanent), another session's hold is
// proxy_exists (retryable).
func TestProxyNamesPerUser(t *testing.T) {
	s := testServer(t)
	mk := func(user, id string) *session {
		return &session{srv: s, user: user, clientID: id, log: slog.New(slog.DiscardHandler), proxies: map[string]*proxy{}}
	}
	a1, a2, b := mk("alice", "a1"), mk("alice", "a2"), mk("bob", "b1")
	db := func() *protocol.NewProxy { return &protocol.NewProxy{Name: "db", ProxyType: protocol.ProxySTCP} }
	if r := s.openProxy(a1, db()); r.Error != "" || r.Name != "db" {
		t.Fatalf("alice: %+v", r)
	}
	if r := s.openProxy(b, db()); r.Error != "" {
		t.Fatalf("bob's db beside alice's: %+v", r)
	}
	if r := s.openProxy(a2, db()); r.Code != protocol.CodeProxyExists || !strings.Contains(r.Error, `"alice.db" is held by another live session of user "alice" (client a1)`) {
		t.Fatalf("alice's second client: %+v", r)
	}
	if r := s.openProxy(a1, db()); r.Code != protocol.CodeBadRequest {
		t.Fatalf("the same session twice: %+v", r)
	}
	if p := s.proxies[proxyKey{"bob", "db"}]; p == nil || p.owner != b || p.fullName() != "bob.db" {
		t.Fatalf("bob's proxy: %+v", p)
	}
	// "a.b"+"c" and "a"+"b.c" read the same in logs but are two proxies.
	if r := s.openProxy(mk("a.b", "x"), &protocol.NewProxy{Name: "c", ProxyType: protocol.ProxySTCP}); r.Error != "" {
		t.Fatal(r.Error)
	}
	if r := s.openProxy(mk("a", "y"), &protocol.NewProxy{Name: "b.c", ProxyType: protocol.ProxySTCP}); r.Error != "" {
		t.Fatalf("a.b.c of user a collided with user a.b's: %+v", r)
	}
}

// Direct paths to a gateway-mapped port are counted, from the visitor's
// path or from the owner's when the owner reported first; an unknown path
// kind counts as nothing.
func TestTallyMapped(t *testing.T) {
	s := testServer(t)
	v := &session{clientID: "v", log: slog.New(slog.DiscardHandler)}
	o := &session{clientID: "o", log: slog.New(slog.DiscardHandler)}
	for i, tc := range []struct{ vpath, opath string }{{"mapped", ""}, {"prflx", "mapped"}, {"srflx", "srflx"}, {"bogus\nkind", ""}} {
		id := fmt.Sprint("s", i)
		s.p2p.attempts[id] = &attempt{session: id, visitor: v, owner: o, visitorNAT: "APDM/APDF", ownerNAT: "APDM/APDF", created: time.Now()}
		if tc.opath != "" {
			s.p2pResult(o, &protocol.P2PResult{SessionID: id, Role: "owner", Outcome: "direct", Path: tc.opath})
		}
		s.p2pResult(v, &protocol.P2PResult{SessionID: id, Role: "visitor", Outcome: "direct", Path: tc.vpath})
	}
	rows := s.P2PTally()
	if len(rows) != 1 || rows[0].Direct != 4 || rows[0].Mapped != 2 {
		t.Fatalf("tally %+v, want 4 direct of which 2 mapped", rows)
	}
	if table := TallyTable(rows); !strings.Contains(table, "mapped") {
		t.Errorf("table lacks the mapped column:\n%s", table)
	}
}

// Direct paths are counted by transport: "tcp" in the tcp column, udp and
// the empty transport of older clients not; a failed attempt never.
func TestTallyTransport(t *testing.T) {
	s := testServer(t)
	v := &session{clientID: "v", log: slog.New(slog.DiscardHandler)}
	o := &session{clientID: "o", log: slog.New(slog.DiscardHandler)}
	for i, tc := range []struct{ outcome, transport string }{{"direct", "tcp"}, {"direct", "udp"}, {"direct", ""}, {"lan", "tcp"}, {"failed", "tcp"}} {
		id := fmt.Sprint("s", i)
		s.p2p.attempts[id] = &attempt{session: id, visitor: v, owner: o, visitorNAT: "EIM/APDF", ownerNAT: "EIM/APDF", created: time.Now()}
		s.p2pResult(v, &protocol.P2PResult{SessionID: id, Role: "visitor", Outcome: tc.outcome, Path: "srflx", Transport: tc.transport})
	}
	rows := s.P2PTally()
	if len(rows) != 1 || rows[0].Direct != 3 || rows[0].LAN != 1 || rows[0].Relay != 1 || rows[0].TCP != 2 {
		t.Fatalf("tally %+v, want 3 direct, 1 lan, 1 relay, 2 of them over tcp", rows)
	}
	if table := TallyTable(rows); !strings.Contains(table, " tcp ") {
		t.Errorf("table lacks the tcp column:\n%s", table)
	}
}
