package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"time"

	"github.com/hopproxy/hop/pkg/buildinfo"
	"github.com/hopproxy/hop/pkg/dashboard"
	"github.com/hopproxy/hop/pkg/webserver"
	"github.com/hopproxy/hop/pkg/xtcp/stunserver"
)

// startSTUN answers STUN Binding requests on UDP bindPort and on
// p2p.stunAltPort (and p2p.stunAltAddr), for NAT discovery by clients.
func (s *Server) startSTUN() error {
	ip := s.cfg.BindAddr
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		ips, lerr := net.DefaultResolver.LookupNetIP(context.Background(), "ip", ip)
		if lerr != nil || len(ips) == 0 {
			return fmt.Errorf("bindAddr %q for the STUN server: %v", ip, lerr)
		}
		addr = ips[0]
	}
	cfg := stunserver.Config{Primary: netip.AddrPortFrom(addr, uint16(s.cfg.BindPort)), AltPort: uint16(s.cfg.P2P.StunAltPort),
		PerIPPerSecond: s.cfg.Limits.StunPerIPPerSecond, Logger: s.log}
	if a := s.cfg.P2P.StunAltAddr; a != "" {
		cfg.AltAddr, err = netip.ParseAddr(a)
		if err != nil {
			return fmt.Errorf("p2p.stunAltAddr %q: %w", a, err)
		}
	}
	st, err := stunserver.Listen(cfg)
	if err != nil {
		return fmt.Errorf("STUN on UDP port %d (and p2p.stunAltPort %d): %w", s.cfg.BindPort, s.cfg.P2P.StunAltPort, err)
	}
	s.stun = st
	return nil
}

// startAPI serves the HTTP API (see APIHandler) on webServer.addr:port
// when port is set.
func (s *Server) startAPI(ctx context.Context) error {
	if s.cfg.WebServer.Port == 0 {
		return nil
	}
	ws, err := webserver.Start(ctx, s.cfg.WebServer, s.APIHandler(), s.log)
	if err != nil {
		return err
	}
	s.api = ws
	return nil
}

// APIHandler is the HTTP API of hops, JSON unless said otherwise:
//
//	GET /api/serverinfo   version, ports, uptime, counts (ServerInfo)
//	GET /api/clients      live and recently gone clients (ClientInfo)
//	GET /api/proxies      the registered proxies (ProxyInfo)
//	GET /api/p2p          the P2P tally (PairStats)
//	GET /api/p2p?table=1  the same as a text table
func (s *Server) APIHandler() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /", dashboard.HopsHandler())
	if h := s.MetricsHandler(); h != nil {
		mux.Handle("GET /metrics", h)
	}
	mux.HandleFunc("GET /api/p2p", func(w http.ResponseWriter, r *http.Request) {
		rows := s.P2PTally()
		if r.URL.Query().Get("table") != "" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprint(w, TallyTable(rows))
			return
		}
		writeJSON(w, rows)
	})
	mux.HandleFunc("GET /api/serverinfo", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.ServerInfo()) })
	mux.HandleFunc("GET /api/clients", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Clients()) })
	mux.HandleFunc("GET /api/proxies", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Proxies()) })
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// ServerInfo is GET /api/serverinfo.
type ServerInfo struct {
	Version          string    `json:"version"`  // of the hops module build ("(devel)" from a work tree)
	NodeName         string    `json:"nodeName"` // nodeName, or its default <hostname>:<bindPort>; the node label of /metrics
	BindPort         int       `json:"bindPort"`
	StartedAt        time.Time `json:"startedAt"`
	UptimeSeconds    int64     `json:"uptimeSeconds"`
	ClientsConnected int       `json:"clientsConnected"`
	Proxies          int       `json:"proxies"`
	EnablePrometheus bool      `json:"enablePrometheus"`
}

// ServerInfo describes the running server.
func (s *Server) ServerInfo() ServerInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ServerInfo{Version: buildinfo.Version, NodeName: s.node, BindPort: s.cfg.BindPort, StartedAt: s.started.UTC(),
		UptimeSeconds: int64(time.Since(s.started).Seconds()), ClientsConnected: len(s.sessions), Proxies: len(s.proxies),
		EnablePrometheus: s.cfg.EnablePrometheus}
}

// ClientInfo is one entry of GET /api/clients: a connected client
// (Online), or one whose last session ended, from the bounded history.
type ClientInfo struct {
	User           string    `json:"user"`
	ClientID       string    `json:"clientID"`
	Addr           string    `json:"addr"`
	Online         bool      `json:"online"`
	NATClass       string    `json:"natClass"` // as last reported in a P2P message; "" if never
	HeartbeatRttMs float64   `json:"heartbeatRttMs"`
	ConnectedAt    time.Time `json:"connectedAt"`
	UptimeSeconds  int64     `json:"uptimeSeconds"` // 0 when not online
	Sessions       int       `json:"sessions"`      // ended ones, plus the live one
	Proxies        []string  `json:"proxies"`
	Losses         []Loss    `json:"losses"` // the last ones, oldest first
	// HeartbeatIntervalMs is the heartbeat interval hops uses with the
	// client (an auto client's learnt one once it told hops); 0 when not
	// online. LearnedIdleMs, for an auto client, is the longest idle
	// silence its probes saw the path to hops survive (0: none yet).
	HeartbeatIntervalMs int64 `json:"heartbeatIntervalMs"`
	LearnedIdleMs       int64 `json:"learnedIdleMs,omitempty"`
}

// Clients lists the live clients and those of the history, sorted by
// user and client ID.
func (s *Server) Clients() []ClientInfo {
	s.mu.Lock()
	live := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		live = append(live, ss)
	}
	hist := s.history.snapshot()
	s.mu.Unlock()
	out := make([]ClientInfo, 0, len(live)+len(hist))
	now := time.Now()
	for _, ss := range live {
		in := ss.info()
		c := ClientInfo{User: ss.user, ClientID: ss.clientID, Addr: in.addr, Online: true, NATClass: in.nat,
			HeartbeatRttMs: float64(in.rtt.Microseconds()) / 1000, ConnectedAt: in.connectedAt.UTC(),
			UptimeSeconds: int64(now.Sub(in.connectedAt).Seconds()), Sessions: 1, Proxies: in.proxies, Losses: []Loss{},
			HeartbeatIntervalMs: in.hbInterval.Milliseconds(), LearnedIdleMs: in.hbLearned.Milliseconds()}
		if h, ok := hist[ss.key().String()]; ok {
			c.Sessions += h.Sessions
			c.Losses = h.Losses
			delete(hist, ss.key().String())
		}
		if c.Proxies == nil {
			c.Proxies = []string{}
		}
		out = append(out, c)
	}
	for _, h := range hist {
		out = append(out, ClientInfo{User: h.User, ClientID: h.ClientID, Addr: h.Addr, NATClass: h.NAT,
			ConnectedAt: h.ConnectedAt.UTC(), Sessions: h.Sessions, Proxies: append([]string{}, h.Proxies...), Losses: h.Losses})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].User != out[j].User {
			return out[i].User < out[j].User
		}
		return out[i].ClientID < out[j].ClientID
	})
	return out
}

// ProxyInfo is one entry of GET /api/proxies. Its counters are the ones
// the Prometheus series read (ProxyStats): BytesIn is from the internet
// user toward hopc, BytesOut the way back.
type ProxyInfo struct {
	Name       string `json:"name"`
	User       string `json:"user"`
	ClientID   string `json:"clientID"`
	Type       string `json:"type"`
	RemotePort int    `json:"remotePort"` // 0 for secret proxies (stcp, xtcp...)
	// Domains (http, https, tcpmux) are the host names routed to the proxy.
	Domains []string `json:"domains,omitempty"`
	// State is "online" (registered by a live session) or "offline" (a
	// proxy of a client that is gone, from the bounded history, until the
	// client is back or forgotten; its counters are 0).
	State      string `json:"state"`
	ConnsOpen  int64  `json:"connsOpen"`
	ConnsTotal int64  `json:"connsTotal"`
	BytesIn    int64  `json:"bytesIn"`
	BytesOut   int64  `json:"bytesOut"`
}

// Proxies lists the registered proxies with their counters, sorted by
// user and name, then the offline ones (OfflineProxies).
func (s *Server) Proxies() []ProxyInfo {
	stats := s.ProxyStats()
	out := make([]ProxyInfo, len(stats))
	for i, p := range stats {
		out[i] = ProxyInfo{Name: p.Name, User: p.User, ClientID: p.ClientID, Type: p.Type, RemotePort: p.RemotePort, Domains: p.Domains, State: "online",
			ConnsOpen: p.ConnsOpen, ConnsTotal: p.ConnsTotal, BytesIn: p.BytesIn, BytesOut: p.BytesOut}
	}
	return append(out, s.OfflineProxies()...)
}

// OfflineProxies lists, from the history, the proxies of clients that are
// gone (their last session's), sorted by user, client ID and name. A
// proxy name another live client holds now is not listed.
func (s *Server) OfflineProxies() []ProxyInfo {
	s.mu.Lock()
	hist := s.history.snapshot()
	for _, ss := range s.sessions {
		delete(hist, ss.key().String())
	}
	held := make(map[proxyKey]bool, len(s.proxies))
	for k := range s.proxies {
		held[k] = true
	}
	s.mu.Unlock()
	var out []ProxyInfo
	for _, h := range hist {
		for i, name := range h.Proxies {
			if held[proxyKey{user: h.User, name: name}] {
				continue
			}
			out = append(out, ProxyInfo{Name: name, User: h.User, ClientID: h.ClientID, Type: h.ProxyTypes[i], State: "offline"})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.User != b.User {
			return a.User < b.User
		}
		if a.ClientID != b.ClientID {
			return a.ClientID < b.ClientID
		}
		return a.Name < b.Name
	})
	return out
}

// tallyLoop logs the P2P tally every p2p.tallyInterval.
func (s *Server) tallyLoop(stop <-chan struct{}) {
	defer s.bgWG.Done()
	iv := s.cfg.P2P.TallyInterval.Duration
	if iv <= 0 {
		return
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.logTally()
		case <-stop:
			return
		}
	}
}
