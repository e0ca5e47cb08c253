package client

import (
	"maps"
	"net"
	"strconv"
	"time"

	"github.com/hopproxy/hop/pkg/xtcp"
)

// Status is what the admin API (GET /api/status) and hopc status show
// of a running client.
type Status struct {
	ClientID  string          `json:"clientID"`
	Server    string          `json:"server"` // serverAddr:serverPort
	Online    bool            `json:"online"` // logged in now
	LastError string          `json:"lastError"`
	Proxies   []ProxyStatus   `json:"proxies"`  // in config order
	Visitors  []VisitorStatus `json:"visitors"` // in config order
	// Nodes is every hops node the client attaches to (serverAddrs, or
	// the addresses of serverAddr), each with its own session.
	Nodes []NodeStatus `json:"nodes"`
	// Heartbeat is what heartbeat.interval = "auto" learnt; nil for a
	// fixed interval.
	Heartbeat *HeartbeatStatus `json:"heartbeat,omitempty"`
}

// HeartbeatStatus is heartbeat.interval = "auto" in Status.
type HeartbeatStatus struct {
	IntervalMs int64 `json:"intervalMs"` // in use (hops' accepted one while online)
	// SurvivedMs is the longest idle silence the probes saw the path keep
	// (0: none yet); FailedMs the shortest it forgot, confirmed (0: none).
	SurvivedMs int64 `json:"survivedMs"`
	FailedMs   int64 `json:"failedMs"`
	Learned    bool  `json:"learned"` // the search converged
	Probes     int   `json:"probes"`  // in this round of learning
}

// States of proxies and visitors in Status.
const (
	StateRunning = "running" // registered with the server / listening
	StatePending = "pending" // not (yet) answered: offline, or waiting for the server
	StateFailed  = "failed"  // refused (Error says why) or cannot listen
)

// ProxyStatus is one proxy in Status.
type ProxyStatus struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	State string `json:"state"`
	Error string `json:"error"` // the server's reason when failed
	// NextRetry is when a proxy refused for a passing reason (its port is
	// in use, say) is tried again, RFC 3339; "" when none is due.
	NextRetry  string `json:"nextRetry"`
	RemoteAddr string `json:"remoteAddr"` // ":6000" on the server; "" for secret proxies
	// Domains (http, https) are the host names the server routes to the
	// proxy once it runs (a subdomain with the server's subDomainHost).
	Domains   []string `json:"domains,omitempty"`
	LocalAddr string   `json:"localAddr"`
}

// VisitorStatus is one visitor in Status.
type VisitorStatus struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	ServerName string `json:"serverName"`
	BindAddr   string `json:"bindAddr"`
	State      string `json:"state"`
	Error      string `json:"error"`
	// Path is how connections reach the proxy now: "direct-udp",
	// "direct-tcp" (punched P2P paths of xtcp/xudp), "relay" (through
	// hops), or "" when no link is up (xtcp/xudp before the first use).
	Path string `json:"path"`
	// Keepalive (xtcp, xudp) is the keepalive interval of the visitor's
	// direct UDP path: its keepaliveInterval, or with "auto" the interval
	// in use and what it was learnt from, e.g. "auto 8s (NAT forgets idle
	// UDP after ~18s)", "auto 2s (learning)".
	Keepalive string `json:"keepalive,omitempty"`
}

// Status returns the state of the client's session, proxies and visitors.
func (c *Client) Status() Status {
	st := c.Stats()
	cfg := c.runningConfig() // as the last reload left it
	out := Status{ClientID: c.id, Server: c.serverAddr(), Online: st.LoggedIn,
		Proxies: make([]ProxyStatus, 0, len(cfg.Proxies)), Visitors: make([]VisitorStatus, 0, len(cfg.Visitors))}
	if st.LastCause != nil {
		out.LastError = st.LastCause.Error()
	}
	if c.auto != nil {
		a := c.auto.status()
		out.Heartbeat = &HeartbeatStatus{IntervalMs: a.Interval.Milliseconds(), SurvivedMs: a.Survived.Milliseconds(),
			FailedMs: a.Failed.Milliseconds(), Learned: a.Converged, Probes: a.Probes}
	}
	regs := c.registrars()
	c.run.mu.Lock()
	visitors := maps.Clone(c.run.running)
	verr := maps.Clone(c.run.verr)
	c.run.mu.Unlock()
	states := mergeStates(regs)
	out.Nodes = c.Nodes()

	for _, p := range cfg.Proxies {
		ps := ProxyStatus{Name: p.Name, Type: string(p.Type), State: StatePending,
			LocalAddr: localDesc(p)}
		remote := p.RemotePort
		if s, ok := states[p.Name]; ok {
			switch {
			case s.up:
				ps.State = StateRunning
				if s.remote != 0 {
					remote = s.remote
				}
				ps.Domains = s.domains
			case s.err != "":
				ps.State, ps.Error = StateFailed, s.err
				if !s.next.IsZero() {
					ps.NextRetry = s.next.UTC().Format(time.RFC3339)
				}
			}
		}
		if !p.Type.IsSecret() && !p.Type.IsVhost() {
			ps.RemoteAddr = ":" + strconv.Itoa(remote)
		}
		out.Proxies = append(out.Proxies, ps)
	}
	for _, vc := range cfg.Visitors {
		vs := VisitorStatus{Name: vc.Name, Type: string(vc.Type), ServerName: vc.ServerName,
			BindAddr: net.JoinHostPort(vc.BindAddr, strconv.Itoa(vc.BindPort))}
		switch v := visitors[vc.Name]; {
		case v != nil:
			vs.State = StateRunning
			vs.Path = v.path()
			vs.Keepalive = c.keepaliveStatus(vc)
		case verr[vc.Name] != "":
			vs.State, vs.Error = StateFailed, verr[vc.Name]
		default:
			vs.State = StatePending // Run has not started it yet
		}
		out.Visitors = append(out.Visitors, vs)
	}
	return out
}

// path is how the visitor's connections reach the proxy now (see
// VisitorStatus.Path).
func (v *visitor) path() string {
	if v.link == nil {
		return "relay" // stcp, sudp: every connection is relayed by hops
	}
	v.link.mu.Lock()
	lc := v.link.cur
	v.link.mu.Unlock()
	if lc == nil {
		return ""
	}
	select {
	case <-lc.link.Done():
		return ""
	default:
	}
	switch lc.link.Current() {
	case xtcp.CarrierUDP:
		return "direct-udp"
	case xtcp.CarrierTCP:
		return "direct-tcp"
	case xtcp.CarrierRelay:
		return "relay"
	}
	return ""
}

// mergeStates is the state of each proxy over the nodes' registrars: the
// first node's where it runs (a proxy runs while any node serves it), else
// the first node's refusal.
func mergeStates(regs []*registrar) map[string]proxyState {
	out := map[string]proxyState{}
	for _, r := range regs {
		for name, st := range r.states() {
			prev, seen := out[name]
			if !seen || (!prev.up && (st.up || prev.err == "")) {
				out[name] = st
			}
		}
	}
	return out
}
