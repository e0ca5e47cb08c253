package vhost

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/hopproxy/hop/pkg/bridge"
	"github.com/hopproxy/hop/pkg/drain"
	"github.com/hopproxy/hop/pkg/metrics"
	"github.com/hopproxy/hop/pkg/vhost/sni"
)

// TLSRoute is one https proxy on the vhost HTTPS port.
type TLSRoute struct {
	Name string // in logs (user.name in hops)
	Dial Dialer
	// Conns, when set, counts the forwarded connections and their bytes
	// (In from the user, Out back).
	Conns *metrics.Conns
}

// HTTPSConfig tunes an HTTPSServer.
type HTTPSConfig struct {
	// HelloTimeout bounds the reading of the ClientHello. Default 10s.
	HelloTimeout time.Duration
	// Conns, when set, holds the forwarded connections (for the drain of
	// a two-phase shutdown); else the server keeps its own.
	Conns *drain.Set
	// Log gets a debug line per refused connection; nil discards.
	Log *slog.Logger
}

// HTTPSServer forwards TLS connections, not terminated, to the route of
// the server name in their ClientHello, replaying the bytes it read.
type HTTPSServer struct {
	cfg          HTTPSConfig
	routes       *Router[*TLSRoute]
	streamServer // accept loop; pending: connections whose ClientHello is being read
}

// NewHTTPS returns a server without routes; Serve starts it.
func NewHTTPS(cfg HTTPSConfig) *HTTPSServer {
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = 10 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &HTTPSServer{cfg: cfg, routes: NewRouter[*TLSRoute]()}
	s.init(log, cfg.Conns)
	return s
}

// Add routes the server names of rule's domains to rt (members of
// rule.Group in turn); an error wraps ErrTaken when another route has one
// of them, or ErrGroupKey.
func (s *HTTPSServer) Add(rule Rule, rt *TLSRoute) (uint64, error) {
	rule.Locations, rule.User = nil, "" // a TLS connection has neither
	return s.routes.Add(rt.Name, rule, rt)
}

// Remove drops the routes of id; open connections go on.
func (s *HTTPSServer) Remove(id uint64) { s.routes.Remove(id) }

// Serve starts serving ln in the background; Close stops it.
func (s *HTTPSServer) Serve(ln net.Listener) { s.serve(ln, s.handle) }

// StopAccepting closes the listener; forwarded connections go on.
func (s *HTTPSServer) StopAccepting() { s.stopAccepting() }

// Close stops accepting, closes the connections it forwards (when it
// keeps its own set) and waits for its goroutines. It may be called more
// than once.
func (s *HTTPSServer) Close() error {
	s.close()
	return nil
}

func (s *HTTPSServer) handle(c net.Conn) {
	src := c.RemoteAddr().String()
	if !s.pending.Add(c) {
		c.Close()
		return
	}
	name, prefix, err := sni.Read(c, time.Now().Add(s.cfg.HelloTimeout))
	s.pending.Remove(c)
	if err != nil {
		s.log.Debug("https connection refused: no server name read", "src", src, "error", err)
		c.Close()
		return
	}
	rt, ok := s.routes.Lookup(name, "/", "")
	if !ok {
		s.log.Debug("https connection refused: no proxy for the server name", "src", src, "server_name", name)
		c.Close()
		return
	}
	if !s.conns.Add(c) {
		c.Close()
		return
	}
	defer s.conns.Remove(c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	st, err := rt.Dial(ctx, src)
	cancel()
	if err != nil {
		s.log.Debug("https connection refused: cannot reach the proxy's client", "proxy", rt.Name, "src", src, "error", err)
		c.Close()
		return
	}
	st.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := st.Write(prefix); err != nil {
		c.Close()
		st.Close()
		return
	}
	st.SetWriteDeadline(time.Time{})
	if rt.Conns == nil {
		bridge.Join(c, st)
		return
	}
	rt.Conns.Opened()
	rt.Conns.In.Add(int64(len(prefix)))
	bridge.JoinCounting(c, st, &rt.Conns.In, &rt.Conns.Out)
	rt.Conns.Closed()
}
