package server

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/protocol"
)

func testServer(t *testing.T) *Server {
	t.Helper()
	cfg := config.DefaultServer()
	cfg.Auth.Token = "t"
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
	owner := &session{clientID: "owner", proxies: map[string]*proxy{}}
	s.proxies["x"] = &proxy{name: "x", typ: protocol.ProxyXTCP, owner: owner, allow: []string{"friend"}}
	s.proxies["web"] = &proxy{name: "web", typ: protocol.ProxyTCP, owner: owner, port: 8080}
	for _, tt := range []struct {
		visitor, name, typ, want string
	}{
		{"friend", "x", protocol.ProxyXTCP, ""},
		{"stranger", "x", protocol.ProxyXTCP, "not in the allowUsers"},
		{"friend", "x", protocol.ProxySTCP, "use the same type on both sides"},
		{"friend", "nope", protocol.ProxyXTCP, "no proxy named"},
		{"friend", "web", protocol.ProxySTCP, "public port, not a secret proxy"},
	} {
		_, e := s.lookupSecret(tt.visitor, tt.name, tt.typ)
		switch {
		case tt.want == "" && e != nil:
			t.Errorf("%+v: refused: %s", tt, e.Message)
		case tt.want != "" && (e == nil || !strings.Contains(e.Message, tt.want)):
			t.Errorf("%+v: got %v, want %q", tt, e, tt.want)
		}
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
