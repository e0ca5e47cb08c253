package metrics

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Server holds the event metrics of hops. The state series come from the
// ServerState given to NewServer.
type Server struct {
	// SessionLosses counts ended client sessions by cause
	// (ServerLossCauses): hop_session_losses_total{cause}.
	SessionLosses *prometheus.CounterVec
	// LoginsRefused counts refused logins by reason (RefusalReasons):
	// hop_logins_refused_total{reason}.
	LoginsRefused *prometheus.CounterVec
	// ProxiesRefused counts NewProxy requests the server refused, by
	// type and protocol error code: hop_proxy_registrations_refused_total{type,code}.
	ProxiesRefused *prometheus.CounterVec
	// P2PAttempts counts P2P attempts whose visitor reported a result:
	// hop_p2p_attempts_total{visitor_nat,owner_nat}.
	P2PAttempts *prometheus.CounterVec
	// P2POutcomes counts them by outcome (lan, direct, relay):
	// hop_p2p_outcomes_total{visitor_nat,owner_nat,outcome}.
	P2POutcomes *prometheus.CounterVec
	// P2PTimeToDirect is the time from a visitor's start to its direct
	// path, for lan and direct outcomes: hop_p2p_time_to_direct_seconds.
	P2PTimeToDirect prometheus.Histogram
}

// P2PBuckets are the buckets of the time-to-direct histograms: a punch
// takes from a few milliseconds (LAN) to the punch timeout (seconds).
var P2PBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10}

// ServerState is what hops reports at every scrape.
type ServerState interface {
	MetricsSnapshot() ServerSnapshot
}

// ServerSnapshot is hops' state at one moment.
type ServerSnapshot struct {
	// Clients are the logged-in sessions.
	Clients []ClientSample
	// Proxies are the registered proxies (all online: a refused one is
	// not registered).
	Proxies []ProxySample
	// Offline counts by type the proxies of clients that are gone (from
	// hops' bounded history of ended sessions).
	Offline map[string]int
}

// ClientSample is one logged-in client.
type ClientSample struct {
	Client       string        // user.clientID, or the client ID alone
	HeartbeatRTT time.Duration // last app heartbeat round trip
	HasRTT       bool          // a heartbeat answer came back
}

// ProxySample is one registered proxy and its counters.
type ProxySample struct {
	Proxy string // user.name, or the name alone
	Type  string
	Conns ConnCounts
}

// LabelNode is the constant label every series of hops carries: the
// node's name (hops' nodeName), so that the series of several hops nodes
// behind one load balancer stay apart in one Prometheus.
const LabelNode = "node"

// NewServer makes hops' metrics and registers them, and a collector of
// state, on reg, every series with the constant label node = node (which
// must not be empty).
func NewServer(reg prometheus.Registerer, node string, state ServerState) (*Server, error) {
	if node == "" {
		return nil, errors.New("metrics: empty node name")
	}
	reg = prometheus.WrapRegistererWith(prometheus.Labels{LabelNode: node}, reg)
	m := &Server{
		SessionLosses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hop_session_losses_total",
			Help: "Client sessions that ended, by cause (heartbeat, mux_keepalive, tcp, server_shutdown, client_closed, replaced, other)."}, []string{"cause"}),
		LoginsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hop_logins_refused_total",
			Help: "Logins hops refused, by reason (the protocol error code, too_many_handshakes, tls or other)."}, []string{"reason"}),
		ProxiesRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hop_proxy_registrations_refused_total",
			Help: "Proxy registrations hops refused, by proxy type and protocol error code."}, []string{"type", "code"}),
		P2PAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hop_p2p_attempts_total",
			Help: "P2P attempts whose visitor reported a result, by the NAT classes of visitor and owner."}, []string{"visitor_nat", "owner_nat"}),
		P2POutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hop_p2p_outcomes_total",
			Help: "P2P attempts by NAT classes and outcome (lan, direct, relay)."}, []string{"visitor_nat", "owner_nat", "outcome"}),
		P2PTimeToDirect: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hop_p2p_time_to_direct_seconds",
			Help: "Time from a visitor's P2P start to its direct path (lan and direct outcomes).", Buckets: P2PBuckets}),
	}
	for _, c := range ServerLossCauses {
		m.SessionLosses.WithLabelValues(c)
	}
	for _, r := range RefusalReasons {
		m.LoginsRefused.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.SessionLosses, m.LoginsRefused, m.ProxiesRefused, m.P2PAttempts, m.P2POutcomes, m.P2PTimeToDirect, &serverCollector{state}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// P2PResult counts one attempt's outcome; the NAT classes must come from
// the bounded set the server reduces reports to.
func (m *Server) P2PResult(visitorNAT, ownerNAT, outcome string, elapsed time.Duration) {
	outcome = Outcome(outcome)
	m.P2PAttempts.WithLabelValues(visitorNAT, ownerNAT).Inc()
	m.P2POutcomes.WithLabelValues(visitorNAT, ownerNAT, outcome).Inc()
	if outcome != OutcomeRelay {
		m.P2PTimeToDirect.Observe(elapsed.Seconds())
	}
}

var (
	descClients     = prometheus.NewDesc("hop_clients_connected", "Clients logged in now.", nil, nil)
	descRTT         = prometheus.NewDesc("hop_client_heartbeat_rtt_seconds", "Last app heartbeat round trip of each logged-in client (hops' view; hopc's own view has no client label).", []string{"client"}, nil)
	descProxies     = prometheus.NewDesc("hop_proxies", "Proxies by type and state: online (registered by a live session) or offline (of a client that is gone).", []string{"type", "state"}, nil)
	descConnsOpen   = prometheus.NewDesc("hop_proxy_connections_open", "Open user connections (UDP: flows; secret proxies: relayed visitor streams) of each proxy.", []string{"proxy", "type"}, nil)
	descConnsTotal  = prometheus.NewDesc("hop_proxy_connections_total", "User connections (UDP: flows; secret proxies: relayed visitor streams) each proxy has had.", []string{"proxy", "type"}, nil)
	descBytesIn     = prometheus.NewDesc("hop_proxy_received_bytes_total", "Bytes from the internet user (or relayed visitor) toward hopc, per proxy.", []string{"proxy", "type"}, nil)
	descBytesOut    = prometheus.NewDesc("hop_proxy_sent_bytes_total", "Bytes from hopc toward the internet user (or relayed visitor), per proxy.", []string{"proxy", "type"}, nil)
	serverStateDesc = []*prometheus.Desc{descClients, descRTT, descProxies, descConnsOpen, descConnsTotal, descBytesIn, descBytesOut}
)

// serverCollector turns a ServerSnapshot into series at scrape time.
type serverCollector struct{ state ServerState }

func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range serverStateDesc {
		ch <- d
	}
}

func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.state.MetricsSnapshot()
	ch <- prometheus.MustNewConstMetric(descClients, prometheus.GaugeValue, float64(len(s.Clients)))
	for _, cl := range s.Clients {
		if cl.HasRTT {
			ch <- prometheus.MustNewConstMetric(descRTT, prometheus.GaugeValue, cl.HeartbeatRTT.Seconds(), cl.Client)
		}
	}
	byType := map[string]int{}
	for _, p := range s.Proxies {
		byType[p.Type]++
		ch <- prometheus.MustNewConstMetric(descConnsOpen, prometheus.GaugeValue, float64(p.Conns.Open), p.Proxy, p.Type)
		ch <- prometheus.MustNewConstMetric(descConnsTotal, prometheus.CounterValue, float64(p.Conns.Total), p.Proxy, p.Type)
		ch <- prometheus.MustNewConstMetric(descBytesIn, prometheus.CounterValue, float64(p.Conns.In), p.Proxy, p.Type)
		ch <- prometheus.MustNewConstMetric(descBytesOut, prometheus.CounterValue, float64(p.Conns.Out), p.Proxy, p.Type)
	}
	for typ, n := range byType {
		ch <- prometheus.MustNewConstMetric(descProxies, prometheus.GaugeValue, float64(n), typ, "online")
	}
	for typ, n := range s.Offline {
		ch <- prometheus.MustNewConstMetric(descProxies, prometheus.GaugeValue, float64(n), typ, "offline")
	}
}
