package metrics

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hopproxy/hop/pkg/admit"
	"github.com/hopproxy/hop/pkg/auth"
	"github.com/hopproxy/hop/pkg/protocol"
)

func TestRefusalReason(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{admit.ErrTooManyFromIP, ReasonTooManyHandshakes},
		{fmt.Errorf("%w (no such user)", auth.ErrAuthFailed), ReasonAuthFailed},
		{fmt.Errorf("hello: %w", protocol.ErrVersion), ReasonVersion},
		{auth.ErrIdentity, ReasonBadRequest},
		{fmt.Errorf("%w: %w", auth.ErrRejected, &protocol.Error{Code: protocol.CodeClientIDInUse}), ReasonClientIDInUse},
		{fmt.Errorf("%w: %w", auth.ErrRejected, &protocol.Error{Code: protocol.CodeHeartbeatRequired}), ReasonHeartbeatRequired},
		{&protocol.Error{Code: "made_up"}, ReasonOther},
		{errors.New("read: connection reset"), ReasonOther},
	} {
		if got := RefusalReason(tt.err); got != tt.want {
			t.Errorf("RefusalReason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestOutcome(t *testing.T) {
	for in, want := range map[string]string{"lan": "lan", "direct": "direct", "failed": "relay", "": "relay", "whatever": "relay"} {
		if got := Outcome(in); got != want {
			t.Errorf("Outcome(%q) = %q, want %q", in, got, want)
		}
	}
}

type fixedClient ClientSnapshot

func (f *fixedClient) MetricsSnapshot() ClientSnapshot { return ClientSnapshot(*f) }

// The client collector turns a snapshot into series: one path of three
// set for a P2P visitor, none for others, and the counters as they are.
func TestClientCollector(t *testing.T) {
	st := &fixedClient{RTTs: []NodeRTT{{Node: "10.0.0.1:7000", RTT: 20 * time.Millisecond}, {Node: "10.0.0.2:7000", RTT: 30 * time.Millisecond}},
		Proxies: []ConnSample{{Name: "ssh", Type: "tcp", Conns: ConnCounts{Open: 1, Total: 4, In: 100, Out: 200}}},
		Visitors: []VisitorSample{
			{ConnSample: ConnSample{Name: "v", Type: "xtcp"}, P2P: true, Path: PathDirectTCP},
			{ConnSample: ConnSample{Name: "s", Type: "stcp", Conns: ConnCounts{Total: 2}}},
		}}
	reg := prometheus.NewRegistry()
	m, err := NewClient(reg, st, []string{"v"})
	if err != nil {
		t.Fatal(err)
	}
	m.P2PResult("v", "EIM/APDF", "APDM/APDF", "failed", 5*time.Second)
	m.P2PResult("v", "EIM/APDF", "made-up class", "failed", time.Second)
	want := `
# HELP hop_visitor_path 1 for the path an xtcp/xudp visitor's link uses now (direct_udp, direct_tcp, relay), 0 for the others.
# TYPE hop_visitor_path gauge
hop_visitor_path{path="direct_tcp",visitor="v"} 1
hop_visitor_path{path="direct_udp",visitor="v"} 0
hop_visitor_path{path="relay",visitor="v"} 0
# HELP hop_client_heartbeat_rtt_seconds Last app heartbeat round trip of the session to each hops node.
# TYPE hop_client_heartbeat_rtt_seconds gauge
hop_client_heartbeat_rtt_seconds{node="10.0.0.1:7000"} 0.02
hop_client_heartbeat_rtt_seconds{node="10.0.0.2:7000"} 0.03
# HELP hop_client_proxy_sent_bytes_total Bytes hopc sent into the tunnel (toward the user) from each proxy's local service.
# TYPE hop_client_proxy_sent_bytes_total counter
hop_client_proxy_sent_bytes_total{proxy="ssh",type="tcp"} 200
# HELP hop_client_visitor_connections_total Application connections (UDP: flows) each visitor has had.
# TYPE hop_client_visitor_connections_total counter
hop_client_visitor_connections_total{type="stcp",visitor="s"} 2
hop_client_visitor_connections_total{type="xtcp",visitor="v"} 0
# HELP hop_client_p2p_outcomes_total P2P attempts of each visitor by outcome (lan, direct, relay).
# TYPE hop_client_p2p_outcomes_total counter
hop_client_p2p_outcomes_total{outcome="direct",visitor="v"} 0
hop_client_p2p_outcomes_total{outcome="lan",visitor="v"} 0
hop_client_p2p_outcomes_total{outcome="relay",visitor="v"} 2
# HELP hop_client_p2p_nat_outcomes_total P2P attempts of this hopc's visitors by the NAT classes of visitor and owner, and outcome (lan, direct, relay).
# TYPE hop_client_p2p_nat_outcomes_total counter
hop_client_p2p_nat_outcomes_total{outcome="relay",owner_nat="unknown",visitor_nat="EIM/APDF"} 1
hop_client_p2p_nat_outcomes_total{outcome="relay",owner_nat="APDM/APDF",visitor_nat="EIM/APDF"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "hop_visitor_path", "hop_client_heartbeat_rtt_seconds",
		"hop_client_proxy_sent_bytes_total", "hop_client_visitor_connections_total", "hop_client_p2p_outcomes_total", "hop_client_p2p_nat_outcomes_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m.P2PTimeToDirect); n != 0 {
		t.Errorf("a relayed attempt was timed as direct (%d series)", n)
	}
	// Not logged in: no round trip series; a second registration on the
	// same registry is refused, not a panic.
	st.RTTs = nil
	if n, _ := testutil.GatherAndCount(reg, "hop_client_heartbeat_rtt_seconds"); n != 0 {
		t.Errorf("%d heartbeat series while not logged in", n)
	}
	if _, err := NewClient(reg, st, nil); err == nil {
		t.Error("registering hopc's metrics twice on one registry succeeded")
	}
}

func TestConns(t *testing.T) {
	var c Conns
	c.Opened()
	c.Opened()
	c.Closed()
	c.In.Add(3)
	if got := c.Snapshot(); got != (ConnCounts{Open: 1, Total: 2, In: 3}) {
		t.Errorf("Snapshot = %+v", got)
	}
}

type fixedServer ServerSnapshot

func (f *fixedServer) MetricsSnapshot() ServerSnapshot { return ServerSnapshot(*f) }

// Every series of hops, event counters and scrape-time state alike,
// carries the node label; an empty node name is refused.
func TestServerNodeLabel(t *testing.T) {
	st := &fixedServer{Clients: []ClientSample{{Client: "alice.c1", HeartbeatRTT: 5 * time.Millisecond, HasRTT: true}},
		Proxies: []ProxySample{{Proxy: "alice.ssh", Type: "tcp", Conns: ConnCounts{In: 7}}}}
	reg := prometheus.NewRegistry()
	m, err := NewServer(reg, "eu-1", st)
	if err != nil {
		t.Fatal(err)
	}
	m.P2PResult("EIM/EIF", "EIM/EIF", "direct", 40*time.Millisecond)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			series++
			node := ""
			for _, lp := range s.GetLabel() {
				if lp.GetName() == LabelNode {
					node = lp.GetValue()
				}
			}
			if node != "eu-1" {
				t.Errorf("%s %v: node label %q, want eu-1", mf.GetName(), s.GetLabel(), node)
			}
		}
	}
	if series < 20 {
		t.Errorf("only %d series gathered", series)
	}
	want := `
# HELP hop_proxy_received_bytes_total Bytes from the internet user (or relayed visitor) toward hopc, per proxy.
# TYPE hop_proxy_received_bytes_total counter
hop_proxy_received_bytes_total{node="eu-1",proxy="alice.ssh",type="tcp"} 7
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "hop_proxy_received_bytes_total"); err != nil {
		t.Fatal(err)
	}
	if _, err := NewServer(prometheus.NewRegistry(), "", st); err == nil {
		t.Error("NewServer with an empty node name succeeded")
	}
}
