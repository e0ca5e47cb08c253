package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hopproxy/hop/pkg/xtcp/nat"
)

// Client holds the event metrics of hopc. The state series come from
// the ClientState given to NewClient.
type Client struct {
	// SessionUp is 1 while hopc is logged in to a node (hops server; hopc
	// keeps a session to each): hop_client_session_up{node}.
	SessionUp *prometheus.GaugeVec
	// Sessions counts logins: hop_client_sessions_total{node}.
	Sessions *prometheus.CounterVec
	// SessionLosses counts logged-in sessions that ended, by cause
	// (ClientLossCauses): hop_client_session_losses_total{node,cause}.
	SessionLosses *prometheus.CounterVec
	// P2PAttempts counts a visitor's P2P attempts that reached the punch:
	// hop_client_p2p_attempts_total{visitor}.
	P2PAttempts *prometheus.CounterVec
	// P2POutcomes counts them by outcome (lan, direct, relay):
	// hop_client_p2p_outcomes_total{visitor,outcome}.
	P2POutcomes *prometheus.CounterVec
	// P2PTimeToDirect is a visitor's time to a direct path:
	// hop_client_p2p_time_to_direct_seconds{visitor}.
	P2PTimeToDirect *prometheus.HistogramVec
	// LoginFailures counts the logins to a node that failed, by reason
	// (ClientLoginFailureReasons):
	// hop_client_login_failures_total{node,reason}.
	LoginFailures *prometheus.CounterVec
	// P2PByNAT counts the attempts by the NAT classes of this hopc (the
	// visitor) and of the owner, and outcome, as hops' tally does:
	// hop_client_p2p_nat_outcomes_total{visitor_nat,owner_nat,outcome}.
	P2PByNAT *prometheus.CounterVec
}

// ClientState is what hopc reports at every scrape.
type ClientState interface {
	MetricsSnapshot() ClientSnapshot
}

// ClientSnapshot is hopc's state at one moment.
type ClientSnapshot struct {
	// RTTs is the last heartbeat round trip of each node's session that
	// is logged in and had an answer.
	RTTs     []NodeRTT
	Proxies  []ConnSample
	Visitors []VisitorSample
}

// NodeRTT is the heartbeat round trip of the session to one node.
type NodeRTT struct {
	Node string
	RTT  time.Duration
}

// ConnSample is one proxy of hopc and its counters. In is the bytes
// that came out of the tunnel (from the user, toward the local service),
// Out the bytes hopc sent into it.
type ConnSample struct {
	Name, Type string
	Conns      ConnCounts
	// State is a proxy's state in hopc's status (ProxyStates), counted by
	// hop_client_proxies; unused for visitors.
	State string
}

// ProxyStates are the values of hop_client_proxies' state label, as
// hopc's status names them.
var ProxyStates = []string{"running", "pending", "failed"}

// VisitorSample is one visitor and its counters. In is the bytes from
// the remote proxy toward the local application, Out those from the
// application toward the proxy. Path is the carrier of an xtcp/xudp
// visitor's link (one of VisitorPaths), "" when it has none or is not
// P2P.
type VisitorSample struct {
	ConnSample
	P2P  bool
	Path string
}

// NewClient makes hopc's metrics and registers them, and a collector of
// state, on reg. visitors are the names of the P2P (xtcp, xudp)
// visitors, whose P2P counters are created at zero.
func NewClient(reg prometheus.Registerer, state ClientState, visitors []string) (*Client, error) {
	m := &Client{
		SessionUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hop_client_session_up",
			Help: "1 while hopc is logged in to the hops node, else 0."}, []string{"node"}),
		Sessions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hop_client_sessions_total",
			Help: "Sessions hopc logged in, per hops node."}, []string{"node"}),
		SessionLosses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hop_client_session_losses_total",
			Help: "Logged-in sessions that ended, per hops node, by cause (heartbeat, mux_keepalive, tcp, server_closed, client_shutdown, other)."}, []string{"node", "cause"}),
		P2PAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hop_client_p2p_attempts_total",
			Help: "P2P attempts of each visitor that reached the punch."}, []string{"visitor"}),
		P2POutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hop_client_p2p_outcomes_total",
			Help: "P2P attempts of each visitor by outcome (lan, direct, relay)."}, []string{"visitor", "outcome"}),
		P2PTimeToDirect: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hop_client_p2p_time_to_direct_seconds",
			Help: "Time from a visitor's P2P start to its direct path.", Buckets: P2PBuckets}, []string{"visitor"}),
		LoginFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hop_client_login_failures_total",
			Help: "Logins to each hops node that failed, by reason (connect, tls, server_proof, or the code hops refused with)."}, []string{"node", "reason"}),
		P2PByNAT: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hop_client_p2p_nat_outcomes_total",
			Help: "P2P attempts of this hopc's visitors by the NAT classes of visitor and owner, and outcome (lan, direct, relay)."}, []string{"visitor_nat", "owner_nat", "outcome"}),
	}
	for _, v := range visitors {
		m.P2PAttempts.WithLabelValues(v)
		for _, o := range []string{OutcomeLAN, OutcomeDirect, OutcomeRelay} {
			m.P2POutcomes.WithLabelValues(v, o)
		}
	}
	for _, c := range []prometheus.Collector{m.SessionUp, m.Sessions, m.SessionLosses, m.P2PAttempts, m.P2POutcomes, m.P2PTimeToDirect, m.P2PByNAT, m.LoginFailures, &clientCollector{state}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// AddNode creates the series of a node hopc attaches to, at zero.
func (m *Client) AddNode(node string) {
	m.SessionUp.WithLabelValues(node).Set(0)
	m.Sessions.WithLabelValues(node)
	for _, c := range ClientLossCauses {
		m.SessionLosses.WithLabelValues(node, c)
	}
	for _, r := range ClientLoginFailureReasons {
		m.LoginFailures.WithLabelValues(node, r)
	}
}

// RemoveNode drops the series of a node hopc no longer attaches to.
func (m *Client) RemoveNode(node string) {
	m.SessionUp.DeleteLabelValues(node)
	m.Sessions.DeleteLabelValues(node)
	m.SessionLosses.DeletePartialMatch(prometheus.Labels{"node": node})
	m.LoginFailures.DeletePartialMatch(prometheus.Labels{"node": node})
}

// P2PResult counts one of visitor's attempts; visitorNAT and ownerNAT are
// NAT classes (nat.Known: anything else counts as "unknown").
func (m *Client) P2PResult(visitor, visitorNAT, ownerNAT, outcome string, elapsed time.Duration) {
	outcome = Outcome(outcome)
	m.P2PAttempts.WithLabelValues(visitor).Inc()
	m.P2POutcomes.WithLabelValues(visitor, outcome).Inc()
	m.P2PByNAT.WithLabelValues(nat.Known(visitorNAT), nat.Known(ownerNAT), outcome).Inc()
	if outcome != OutcomeRelay {
		m.P2PTimeToDirect.WithLabelValues(visitor).Observe(elapsed.Seconds())
	}
}

var (
	descCRTT        = prometheus.NewDesc("hop_client_heartbeat_rtt_seconds", "Last app heartbeat round trip of the session to each hops node.", []string{"node"}, nil)
	descCPOpen      = prometheus.NewDesc("hop_client_proxy_connections_open", "Open connections (UDP: flows) of each proxy, hopc's side.", []string{"proxy", "type"}, nil)
	descCPTotal     = prometheus.NewDesc("hop_client_proxy_connections_total", "Connections (UDP: flows) each proxy has had, hopc's side.", []string{"proxy", "type"}, nil)
	descCPIn        = prometheus.NewDesc("hop_client_proxy_received_bytes_total", "Bytes hopc received from the tunnel (from the user) toward each proxy's local service.", []string{"proxy", "type"}, nil)
	descCPOut       = prometheus.NewDesc("hop_client_proxy_sent_bytes_total", "Bytes hopc sent into the tunnel (toward the user) from each proxy's local service.", []string{"proxy", "type"}, nil)
	descCVOpen      = prometheus.NewDesc("hop_client_visitor_connections_open", "Open application connections (UDP: flows) of each visitor.", []string{"visitor", "type"}, nil)
	descCVTotal     = prometheus.NewDesc("hop_client_visitor_connections_total", "Application connections (UDP: flows) each visitor has had.", []string{"visitor", "type"}, nil)
	descCVIn        = prometheus.NewDesc("hop_client_visitor_received_bytes_total", "Bytes each visitor received from the remote proxy toward the local application.", []string{"visitor", "type"}, nil)
	descCVOut       = prometheus.NewDesc("hop_client_visitor_sent_bytes_total", "Bytes each visitor sent from the local application toward the remote proxy.", []string{"visitor", "type"}, nil)
	descCProxies    = prometheus.NewDesc("hop_client_proxies", "hopc's proxies by type and state (running: registered; pending: waiting for a session or an answer; failed: refused, retried if the reason passes).", []string{"type", "state"}, nil)
	descVPath       = prometheus.NewDesc("hop_visitor_path", "1 for the path an xtcp/xudp visitor's link uses now (direct_udp, direct_tcp, relay), 0 for the others.", []string{"visitor", "path"}, nil)
	clientStateDesc = []*prometheus.Desc{descCRTT, descCPOpen, descCPTotal, descCPIn, descCPOut, descCVOpen, descCVTotal, descCVIn, descCVOut, descVPath, descCProxies}
)

// clientCollector turns a ClientSnapshot into series at scrape time.
type clientCollector struct{ state ClientState }

func (c *clientCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range clientStateDesc {
		ch <- d
	}
}

func (c *clientCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.state.MetricsSnapshot()
	for _, r := range s.RTTs {
		ch <- prometheus.MustNewConstMetric(descCRTT, prometheus.GaugeValue, r.RTT.Seconds(), r.Node)
	}
	conns := func(open, total, in, out *prometheus.Desc, x ConnSample) {
		ch <- prometheus.MustNewConstMetric(open, prometheus.GaugeValue, float64(x.Conns.Open), x.Name, x.Type)
		ch <- prometheus.MustNewConstMetric(total, prometheus.CounterValue, float64(x.Conns.Total), x.Name, x.Type)
		ch <- prometheus.MustNewConstMetric(in, prometheus.CounterValue, float64(x.Conns.In), x.Name, x.Type)
		ch <- prometheus.MustNewConstMetric(out, prometheus.CounterValue, float64(x.Conns.Out), x.Name, x.Type)
	}
	byState := map[[2]string]int{}
	for _, p := range s.Proxies {
		conns(descCPOpen, descCPTotal, descCPIn, descCPOut, p)
		if p.State != "" {
			byState[[2]string{p.Type, p.State}]++
		}
	}
	types := map[string]bool{}
	for _, p := range s.Proxies {
		types[p.Type] = true
	}
	for t := range types { // every state of a type present, 0 included
		for _, st := range ProxyStates {
			ch <- prometheus.MustNewConstMetric(descCProxies, prometheus.GaugeValue, float64(byState[[2]string{t, st}]), t, st)
		}
	}
	for _, v := range s.Visitors {
		conns(descCVOpen, descCVTotal, descCVIn, descCVOut, v.ConnSample)
		if !v.P2P {
			continue
		}
		for _, p := range VisitorPaths {
			val := 0.0
			if p == v.Path {
				val = 1
			}
			ch <- prometheus.MustNewConstMetric(descVPath, prometheus.GaugeValue, val, v.Name, p)
		}
	}
}
