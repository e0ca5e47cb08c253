package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/hopproxy/hop/pkg/dashboard"
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

// startAPI serves the HTTP API on webServer.addr:port when port is set:
//
//	GET /api/p2p          the P2P tally as JSON
//	GET /api/p2p?table=1  the same as a text table
//	GET /api/clients      ended sessions per client ID
//	GET /metrics          Prometheus metrics, with enablePrometheus
func (s *Server) startAPI(ctx context.Context) error {
	if s.cfg.WebServer.Port == 0 {
		return nil
	}
	addr := net.JoinHostPort(s.cfg.WebServer.Addr, strconv.Itoa(s.cfg.WebServer.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("webServer %s: %w", addr, err)
	}
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
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(rows)
	})
	mux.HandleFunc("GET /api/clients", func(w http.ResponseWriter, r *http.Request) {
		type row struct {
			Sessions  int       `json:"sessions"`
			LastCause string    `json:"lastCause"`
			LastEnd   time.Time `json:"lastEnd"`
		}
		out := map[string]row{}
		for id, h := range s.History() {
			cause := ""
			if h.LastCause != nil {
				cause = h.LastCause.Error()
			}
			out[id] = row{h.Sessions, cause, h.LastEnd}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
	s.api = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	s.log.Info("web API listening", "addr", ln.Addr().String())
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		if err := s.api.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("web API stopped", "error", err)
		}
	}()
	return nil
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
