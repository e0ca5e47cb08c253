package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/auth"
	"github.com/hopproxy/hop/pkg/heartbeat"
	"github.com/hopproxy/hop/pkg/mux"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestLossCause(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("x: %w", heartbeat.ErrTimeout), "heartbeat"},
		{fmt.Errorf("%w: no answer", mux.ErrKeepaliveTimeout), "mux_keepalive"},
		{&mux.ConnError{Op: "read", Err: errors.New("connection reset by peer")}, "tcp"},
		{ErrShutdown, "server_shutdown"},
		{mux.ErrPeerClosed, "client_closed"},
		{ErrReplaced, "replaced"},
		{fmt.Errorf("protocol violation on the control stream: %w", protocol.ErrMalformed), "other"},
		{nil, "other"},
	} {
		if got := lossCause(tt.err); got != tt.want {
			t.Errorf("lossCause(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// A replaced session is counted as such; every cause has a series from
// the start.
func TestMetricsSessionLosses(t *testing.T) {
	s := testServer(t)
	k := auth.NewIdentity().Public()
	first := liveSession(t, s, "alice", "c", k)
	if err := s.register(first); err != nil {
		t.Fatal(err)
	}
	go func() { <-first.ms.Done(); s.unregister(first, first.ms.Err()) }()
	if n := testutil.CollectAndCount(s.metrics.SessionLosses); n != 7 {
		t.Fatalf("%d hop_session_losses_total series before any loss, want 7 (one per cause)", n)
	}
	again := liveSession(t, s, "alice", "c", k)
	if err := s.register(again); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(s.metrics.SessionLosses.WithLabelValues("replaced")); got != 1 {
		t.Fatalf("hop_session_losses_total{cause=replaced} = %v, want 1", got)
	}
	if n := testutil.ToFloat64(s.metrics.SessionLosses.WithLabelValues("other")); n != 0 {
		t.Fatalf("cause other = %v, want 0", n)
	}
}

func TestMetricsP2P(t *testing.T) {
	s := testServer(t)
	v := &session{clientID: "v", log: slog.New(slog.DiscardHandler)}
	o := &session{clientID: "o"}
	record := func(id, vnat, onat, outcome string, ms int64) {
		s.p2p.attempts[id] = &attempt{session: id, visitor: v, owner: o, visitorNAT: vnat, ownerNAT: onat, created: time.Now()}
		s.p2pResult(v, &protocol.P2PResult{SessionID: id, Role: "visitor", Outcome: outcome, ElapsedMs: ms})
	}
	record("a", "EIM/APDF", "EIM/APDF", "direct", 50)
	record("b", "EIM/APDF", "EIM/APDF", "lan", 30)
	record("c", "APDM/APDF", "made-up NAT", "failed", 7000)
	want := `
# HELP hop_p2p_outcomes_total P2P attempts by NAT classes and outcome (lan, direct, relay).
# TYPE hop_p2p_outcomes_total counter
hop_p2p_outcomes_total{node="test-node",outcome="direct",owner_nat="EIM/APDF",visitor_nat="EIM/APDF"} 1
hop_p2p_outcomes_total{node="test-node",outcome="lan",owner_nat="EIM/APDF",visitor_nat="EIM/APDF"} 1
hop_p2p_outcomes_total{node="test-node",outcome="relay",owner_nat="unknown",visitor_nat="APDM/APDF"} 1
# HELP hop_p2p_attempts_total P2P attempts whose visitor reported a result, by the NAT classes of visitor and owner.
# TYPE hop_p2p_attempts_total counter
hop_p2p_attempts_total{node="test-node",owner_nat="EIM/APDF",visitor_nat="EIM/APDF"} 2
hop_p2p_attempts_total{node="test-node",owner_nat="unknown",visitor_nat="APDM/APDF"} 1
`
	if err := testutil.CollectAndCompare(s.reg, strings.NewReader(want), "hop_p2p_outcomes_total", "hop_p2p_attempts_total"); err != nil {
		t.Fatal(err)
	}
	// Two direct paths (50 and 30 ms); the relayed one is not timed.
	if err := testutil.CollectAndCompare(s.metrics.P2PTimeToDirect, strings.NewReader(`
# HELP hop_p2p_time_to_direct_seconds Time from a visitor's P2P start to its direct path (lan and direct outcomes).
# TYPE hop_p2p_time_to_direct_seconds histogram
hop_p2p_time_to_direct_seconds_bucket{le="0.01"} 0
hop_p2p_time_to_direct_seconds_bucket{le="0.025"} 0
hop_p2p_time_to_direct_seconds_bucket{le="0.05"} 2
hop_p2p_time_to_direct_seconds_bucket{le="0.1"} 2
hop_p2p_time_to_direct_seconds_bucket{le="0.25"} 2
hop_p2p_time_to_direct_seconds_bucket{le="0.5"} 2
hop_p2p_time_to_direct_seconds_bucket{le="1"} 2
hop_p2p_time_to_direct_seconds_bucket{le="2"} 2
hop_p2p_time_to_direct_seconds_bucket{le="3"} 2
hop_p2p_time_to_direct_seconds_bucket{le="5"} 2
hop_p2p_time_to_direct_seconds_bucket{le="10"} 2
hop_p2p_time_to_direct_seconds_bucket{le="+Inf"} 2
hop_p2p_time_to_direct_seconds_sum 0.08
hop_p2p_time_to_direct_seconds_count 2
`)); err != nil {
		t.Fatal(err)
	}
}

// A udp proxy counts its flows and the bytes of its datagrams both ways;
// its series leave with it.
func TestMetricsUDPProxy(t *testing.T) {
	s := testServer(t)
	fc := &fakeClient{open: map[netip.AddrPort]net.Conn{}, answer: map[netip.AddrPort]bool{}}
	u, pc := testRelay(t, udpLimits{maxFlows: 8, maxPerIP: 8, unanswered: time.Minute}, fc)
	owner := &session{user: "alice", clientID: "a1", proxies: map[string]*proxy{}}
	u.p.owner, u.p.typ, u.p.port = owner, protocol.ProxyUDP, pc.LocalAddr().(*net.UDPAddr).Port
	s.proxies[u.p.key()] = u.p
	src := source(t, "127.0.0.1")
	fc.mu.Lock()
	fc.answer[src.LocalAddr().(*net.UDPAddr).AddrPort()] = true
	fc.mu.Unlock()
	for range 3 {
		if _, err := src.WriteTo([]byte("hello"), pc.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		src.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := src.ReadFrom(make([]byte, 64)); err != nil {
			t.Fatalf("no answer through the relay: %v", err)
		}
	}
	// The relay counts a datagram right after sending it: poll, as the
	// answer can arrive a moment before the count.
	var st []ProxyStat
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		st = s.ProxyStats()
		if len(st) == 1 && st[0].BytesOut == 15 || time.Now().After(deadline) {
			break
		}
	}
	if len(st) != 1 || st[0].Name != "u" || st[0].User != "alice" || st[0].ClientID != "a1" || st[0].RemotePort != u.p.port ||
		st[0].ConnsTotal != 1 || st[0].ConnsOpen != 1 || st[0].BytesIn != 15 || st[0].BytesOut != 15 {
		t.Fatalf("ProxyStats = %+v; want one flow, 15 bytes each way", st)
	}
	want := `
# HELP hop_proxy_received_bytes_total Bytes from the internet user (or relayed visitor) toward hopc, per proxy.
# TYPE hop_proxy_received_bytes_total counter
hop_proxy_received_bytes_total{node="test-node",proxy="alice.u",type="udp"} 15
# HELP hop_proxy_sent_bytes_total Bytes from hopc toward the internet user (or relayed visitor), per proxy.
# TYPE hop_proxy_sent_bytes_total counter
hop_proxy_sent_bytes_total{node="test-node",proxy="alice.u",type="udp"} 15
# HELP hop_proxy_connections_open Open user connections (UDP: flows; secret proxies: relayed visitor streams) of each proxy.
# TYPE hop_proxy_connections_open gauge
hop_proxy_connections_open{node="test-node",proxy="alice.u",type="udp"} 1
# HELP hop_proxies Proxies by type and state: online (registered by a live session) or offline (of a client that is gone).
# TYPE hop_proxies gauge
hop_proxies{node="test-node",state="online",type="udp"} 1
`
	if err := testutil.CollectAndCompare(s.reg, strings.NewReader(want), "hop_proxy_received_bytes_total", "hop_proxy_sent_bytes_total", "hop_proxy_connections_open", "hop_proxies"); err != nil {
		t.Fatal(err)
	}
	delete(s.proxies, u.p.key())
	if n := testutil.CollectAndCount(s.reg, "hop_proxy_received_bytes_total", "hop_proxies"); n != 0 {
		t.Fatalf("%d series left of a removed proxy", n)
	}
}

// MetricsHandler is nil without enablePrometheus, and serves the
// registry's text format with it.
func TestMetricsHandler(t *testing.T) {
	s := testServer(t)
	if s.MetricsHandler() != nil {
		t.Fatal("MetricsHandler without enablePrometheus is not nil")
	}
	s.cfg.EnablePrometheus = true
	srv := httptest.NewServer(s.MetricsHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`hop_clients_connected{node="test-node"} 0`, `hop_session_losses_total{cause="heartbeat",node="test-node"} 0`,
		`hop_logins_refused_total{node="test-node",reason="auth_failed"} 0`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	// Every series carries the node label (nodeName).
	for line := range strings.Lines(string(body)) {
		if !strings.HasPrefix(line, "#") && !strings.Contains(line, `node="test-node"`) {
			t.Errorf("a series without node=\"test-node\": %s", line)
		}
	}
	if strings.Contains(string(body), "go_goroutines") {
		t.Error("/metrics has the default registry's Go collector: the server must use its own registry")
	}
}

// nodeName is the label of series registered at start: a reload that
// changes it needs a restart, and the node stays what it was.
func TestReloadNodeNameNeedsRestart(t *testing.T) {
	s := testServer(t)
	next := *s.cfg
	next.NodeName = "renamed"
	applied, restart, err := s.Reload(&next)
	if err != nil || len(applied) != 0 || !slices.Equal(restart, []string{"nodeName"}) {
		t.Fatalf("Reload: applied %v, needs restart %v, %v; want nodeName to need a restart", applied, restart, err)
	}
	if got := s.ServerInfo().NodeName; got != "test-node" {
		t.Errorf("serverinfo nodeName after the reload = %q, want test-node", got)
	}
}
