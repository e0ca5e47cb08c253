package server

import (
	"net/http"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hopproxy/hop/pkg/metrics"
)

// ProxyStat is one registered proxy and its counters, the numbers behind
// both /api/proxies and the hop_proxy_* series. BytesIn are the bytes
// from the internet user (or a relayed visitor) toward hopc, BytesOut
// those back. For udp proxies a connection is a flow (one source
// address); for secret proxies one relayed visitor stream.
type ProxyStat struct {
	Name       string
	User       string
	ClientID   string
	Type       string
	RemotePort int      // 0 for secret proxies
	Domains    []string // http, https: the host names routed to it
	ConnsOpen  int64
	ConnsTotal int64
	BytesIn    int64
	BytesOut   int64
}

// ProxyStats returns every registered proxy with its counters, sorted by
// user and name.
func (s *Server) ProxyStats() []ProxyStat {
	s.mu.Lock()
	out := make([]ProxyStat, 0, len(s.proxies))
	for _, p := range s.proxies {
		c := p.conns.Snapshot()
		out = append(out, ProxyStat{Name: p.name, User: p.owner.user, ClientID: p.owner.clientID, Type: p.typ, RemotePort: p.port, Domains: p.domains,
			ConnsOpen: c.Open, ConnsTotal: c.Total, BytesIn: c.In, BytesOut: c.Out})
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].User != out[j].User {
			return out[i].User < out[j].User
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// MetricsSnapshot is the state the Prometheus collector reads at every
// scrape (metrics.ServerState).
func (s *Server) MetricsSnapshot() metrics.ServerSnapshot {
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	var snap metrics.ServerSnapshot
	for _, ss := range sessions {
		cs := metrics.ClientSample{Client: ss.key().String()}
		if hb := ss.monitor(); hb != nil {
			if st := hb.Stats(); !st.LastPong.IsZero() {
				cs.HeartbeatRTT, cs.HasRTT = st.LastRTT, true
			}
		}
		snap.Clients = append(snap.Clients, cs)
	}
	for _, p := range s.ProxyStats() {
		snap.Proxies = append(snap.Proxies, metrics.ProxySample{Proxy: qualify(p.User, p.Name), Type: p.Type,
			Conns: metrics.ConnCounts{Open: p.ConnsOpen, Total: p.ConnsTotal, In: p.BytesIn, Out: p.BytesOut}})
	}
	for _, p := range s.OfflineProxies() {
		if snap.Offline == nil {
			snap.Offline = map[string]int{}
		}
		snap.Offline[p.Type]++
	}
	return snap
}

// newMetrics makes the server's registry and metrics. They exist whether
// or not enablePrometheus is set (counting costs next to nothing); only
// MetricsHandler depends on it.
func (s *Server) newMetrics() error {
	s.reg = prometheus.NewRegistry()
	m, err := metrics.NewServer(s.reg, s.node, s)
	if err != nil {
		return err
	}
	s.metrics = m
	return nil
}

// MetricsHandler serves the server's metrics in the Prometheus formats,
// for GET /metrics; nil when enablePrometheus is off.
func (s *Server) MetricsHandler() http.Handler {
	if !s.cfg.EnablePrometheus {
		return nil
	}
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{s}})
}

// slogPrinter passes promhttp's errors (a collector failing) to the log.
type slogPrinter struct{ s *Server }

func (p slogPrinter) Println(v ...any) { p.s.log.Error("serving /metrics", "error", v) }
