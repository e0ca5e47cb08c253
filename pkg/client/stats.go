package client

import (
	"errors"
	"log/slog"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hopproxy/hop/pkg/metrics"
	"github.com/hopproxy/hop/pkg/mux"
	"github.com/hopproxy/hop/pkg/xtcp"
)

// clientMetrics is hopc's registry and the counters its collector reads.
// The counters exist whether or not enablePrometheus is set (counting
// costs next to nothing); only MetricsHandler depends on it.
type clientMetrics struct {
	reg *prometheus.Registry // the client's own, never the default one
	m   *metrics.Client

	mu       sync.Mutex                // a reload adds names
	proxies  map[string]*metrics.Conns // by proxy name, kept across reloads
	visitors map[string]*metrics.Conns // by visitor name, kept across reloads
}

// conns returns the counters of name in m, made at zero on first use.
func (cm *clientMetrics) conns(m map[string]*metrics.Conns, name string) *metrics.Conns {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	x := m[name]
	if x == nil {
		x = &metrics.Conns{}
		m[name] = x
	}
	return x
}

func (c *Client) newMetrics() error {
	cm := &c.metrics
	cm.reg, cm.proxies, cm.visitors = prometheus.NewRegistry(), map[string]*metrics.Conns{}, map[string]*metrics.Conns{}
	for _, p := range c.cfg.Proxies {
		cm.proxies[p.Name] = &metrics.Conns{}
	}
	var p2p []string
	for _, v := range c.cfg.Visitors {
		cm.visitors[v.Name] = &metrics.Conns{}
		if v.Type.IsP2P() {
			p2p = append(p2p, v.Name)
		}
	}
	m, err := metrics.NewClient(cm.reg, c, p2p)
	if err != nil {
		return err
	}
	cm.m = m
	return nil
}

// proxyConns is the counters of proxy name.
func (c *Client) proxyConns(name string) *metrics.Conns {
	return c.metrics.conns(c.metrics.proxies, name)
}

// MetricsHandler serves hopc's metrics in the Prometheus formats, for
// GET /metrics on the web server; nil when enablePrometheus is off.
func (c *Client) MetricsHandler() http.Handler {
	if !c.cfg.EnablePrometheus {
		return nil
	}
	return promhttp.HandlerFor(c.metrics.reg, promhttp.HandlerOpts{ErrorLog: errorLog{c.log}})
}

// errorLog passes promhttp's errors (a collector failing) to the log.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Println(v ...any) { e.log.Error("serving /metrics", "error", v) }

// MetricsSnapshot is the state the Prometheus collector reads at every
// scrape (metrics.ClientState).
func (c *Client) MetricsSnapshot() metrics.ClientSnapshot {
	var s metrics.ClientSnapshot
	for _, l := range c.lives() {
		if l.hb == nil || l.node == nil {
			continue
		}
		if st := l.hb.Stats(); !st.LastPong.IsZero() {
			s.RTTs = append(s.RTTs, metrics.NodeRTT{Node: l.node.addr, RTT: st.LastRTT})
		}
	}
	states := map[string]string{}
	for _, p := range c.Status().Proxies {
		states[p.Name] = p.State
	}
	cfg := c.runningConfig()
	for _, p := range cfg.Proxies {
		s.Proxies = append(s.Proxies, metrics.ConnSample{Name: p.Name, Type: string(p.Type), Conns: c.proxyConns(p.Name).Snapshot(), State: states[p.Name]})
	}
	paths := map[string]string{}
	c.run.mu.Lock()
	links := make(map[string]*p2pLink, len(c.run.running))
	for n, v := range c.run.running {
		if v.link != nil {
			links[n] = v.link
		}
	}
	c.run.mu.Unlock()
	for n, l := range links {
		paths[n] = l.path()
	}
	for _, v := range cfg.Visitors {
		s.Visitors = append(s.Visitors, metrics.VisitorSample{
			ConnSample: metrics.ConnSample{Name: v.Name, Type: string(v.Type), Conns: c.metrics.conns(c.metrics.visitors, v.Name).Snapshot()},
			P2P:        v.Type.IsP2P(), Path: paths[v.Name]})
	}
	return s
}

// path names the carrier the link uses now (metrics.VisitorPaths), or ""
// when the visitor has no link.
func (l *p2pLink) path() string {
	l.mu.Lock()
	lc := l.cur
	l.mu.Unlock()
	if lc == nil {
		return ""
	}
	switch lc.link.Current() {
	case xtcp.CarrierUDP:
		return metrics.PathDirectUDP
	case xtcp.CarrierTCP:
		return metrics.PathDirectTCP
	case xtcp.CarrierRelay:
		return metrics.PathRelay
	}
	return ""
}

// sessionEnded counts the end of a logged-in session.
func (c *Client) sessionEnded(n *node, cause error) {
	c.metrics.m.SessionUp.WithLabelValues(n.addr).Set(0)
	c.metrics.m.SessionLosses.WithLabelValues(n.addr, clientLossCause(cause)).Inc()
}

// clientLossCause is the cause label of hop_client_session_losses_total.
func clientLossCause(err error) string {
	if c := metrics.LinkCause(err); c != "" {
		return c
	}
	switch {
	case errors.Is(err, errShutdown):
		return metrics.CauseClientShutdown
	case errors.Is(err, mux.ErrPeerClosed):
		return metrics.CauseServerClosed
	}
	return metrics.CauseOther
}
