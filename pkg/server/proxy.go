package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"

	"github.com/hopproxy/hop/pkg/acceptloop"
	"github.com/hopproxy/hop/pkg/bridge"
	"github.com/hopproxy/hop/pkg/bwlimit"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/metrics"
	"github.com/hopproxy/hop/pkg/protocol"
)

// proxyKey names a proxy on the server: its owner's user and the name the
// owner gave it. Names are per user (frp's user.name); ports are global.
type proxyKey struct{ user, name string }

// proxy is one public port of a client.
type proxy struct {
	name    string // the owner's name of it, sent in StartWork
	typ     string
	port    int      // 0 for secret proxies
	allow   []string // secret proxies: users that may visit; empty = the owner's user, "*" = any
	owner   *session
	log     *slog.Logger
	ln      net.Listener // tcp
	pc      *net.UDPConn // udp
	udp     *udpRelay
	wg      sync.WaitGroup
	stopped sync.Once
	conns   metrics.Conns  // see ProxyStats
	limit   *bwlimit.Limit // bandwidthLimitMode = "server"; nil for none
	group   *tcpGroup      // the load-balancing group it is a member of, or nil

	// --- vhost: http and https proxies
	domains []string // as routed, subdomain expanded
	unroute func()   // drops the proxy's routes; nil for other types
}

// stopAccepting closes the public port; open connections go on.
func (p *proxy) stopAccepting() {
	p.stopped.Do(func() {
		if p.unroute != nil {
			p.unroute()
		}
		if p.ln != nil {
			p.ln.Close()
		}
		if p.pc != nil {
			p.pc.Close()
		}
	})
}

func (p *proxy) key() proxyKey { return proxyKey{p.owner.user, p.name} }

// fullName is the server-side name, user.name, for logs.
func (p *proxy) fullName() string { return qualify(p.owner.user, p.name) }

func refuse(name, code, format string, args ...any) *protocol.NewProxyResp {
	return &protocol.NewProxyResp{Name: name, Code: code, Error: fmt.Sprintf(format, args...)}
}

// openProxy applies the server policy to a NewProxy request and opens the
// public port.
func (s *Server) openProxy(ss *session, m *protocol.NewProxy) *protocol.NewProxyResp {
	r := s.openProxyLocked(ss, m)
	if r.Code != "" {
		s.metrics.ProxiesRefused.WithLabelValues(proxyTypeLabel(m.ProxyType), refusalCode(r.Code)).Inc()
	}
	return r
}

func (s *Server) openProxyLocked(ss *session, m *protocol.NewProxy) *protocol.NewProxyResp {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return refuse(m.Name, protocol.CodeShuttingDown, "server is shutting down")
	}
	full := qualify(ss.user, m.Name)
	if other, ok := s.proxies[proxyKey{ss.user, m.Name}]; ok {
		if other.owner == ss {
			return refuse(m.Name, protocol.CodeBadRequest, "proxy %q is already registered by this session", full)
		}
		return refuse(m.Name, protocol.CodeProxyExists, "proxy name %q is held by another live session of user %q (client %s); if that is a previous run of this hopc, it is freed when that session ends or misses its heartbeat; otherwise give each proxy of the user a unique name", full, ss.user, other.owner.clientID)
	}
	ss.mu.Lock()
	n := len(ss.proxies)
	ss.mu.Unlock()
	pol := s.policy()
	if max := pol.MaxProxiesPerClient; max > 0 && n >= max {
		return refuse(m.Name, protocol.CodeTooManyProxies, "this client already has %d proxies, the server's maxProxiesPerClient", max)
	}
	if m.RemotePort != 0 && !pol.PortAllowed(m.RemotePort) {
		return refuse(m.Name, protocol.CodePortNotAllowed, "remotePort %d is not in the server's allowPorts; pick a port the server allows or ask its operator", m.RemotePort)
	}
	p := &proxy{name: m.Name, typ: m.ProxyType, owner: ss, allow: m.AllowUsers, limit: bwlimit.New(m.BandwidthLimit)}
	if isVhost(p.typ) {
		return s.openVhost(ss, m, p, full)
	}
	if isSecret(p.typ) {
		p.log = ss.log.With("proxy", full, "type", p.typ)
		s.proxies[p.key()] = p
		ss.mu.Lock()
		ss.proxies[p.name] = p
		ss.mu.Unlock()
		p.log.Info("secret proxy registered: reachable through visitors", "bandwidth_limit_bytes_per_second", p.limit.Rate())
		return &protocol.NewProxyResp{Name: p.name}
	}
	open := func() *protocol.NewProxyResp {
		if err := s.bind(p, m.RemotePort, pol.AllowPorts); err != nil {
			r := bindRefusal(m.Name, m.RemotePort, err)
			if r.Code == protocol.CodeTemporary {
				s.logLimit.Log(context.Background(), ss.log, slog.LevelWarn, ss.key().String(), "cannot open a proxy's port: out of resources; the client will retry",
					"proxy", full, "remote_port", m.RemotePort, "error", err, "hint", "raise the open files limit (ulimit -n, LimitNOFILE= in a systemd unit)")
			}
			return r
		}
		return nil
	}
	if m.Group != "" {
		if r := s.joinGroup(p, m, open); r != nil {
			return r
		}
	} else if r := open(); r != nil {
		return r
	}
	p.log = ss.log.With("proxy", full, "type", p.typ, "port", p.port)
	s.proxies[p.key()] = p
	ss.mu.Lock()
	ss.proxies[p.name] = p
	ss.mu.Unlock()
	switch {
	case p.group != nil: // the group accepts on its port
	case p.typ == protocol.ProxyTCP:
		p.wg.Add(1)
		go s.serveTCP(p)
	default:
		p.wg.Add(1)
		p.udp = newUDPRelay(s, p, m.IdleTimeoutMs)
		go p.udp.serve()
	}
	if p.limit != nil {
		p.log.Info("proxy started", "bandwidth_limit_bytes_per_second", p.limit.Rate())
	} else {
		p.log.Info("proxy started")
	}
	return &protocol.NewProxyResp{Name: p.name, RemotePort: p.port}
}

// bindRefusal is the answer to a NewProxy whose port cannot be opened,
// by the cause: a port in use or one the server may not open is for the
// user to change; a server out of file descriptors or socket memory is
// temporary, and hopc retries.
func bindRefusal(name string, port int, err error) *protocol.NewProxyResp {
	what := fmt.Sprintf("remotePort %d", port)
	if port == 0 {
		what = "a free port"
	}
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		if port == 0 {
			return refuse(name, protocol.CodePortInUse, "no free port on the server (within its allowPorts, if set); ask its operator for more")
		}
		return refuse(name, protocol.CodePortInUse, "%s is already in use on the server; pick another or set remotePort = 0", what)
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return refuse(name, protocol.CodeTemporary, "the server is out of file descriptors and cannot open %s now (%v); hopc retries, and the server's operator should raise its open files limit (ulimit -n)", what, err)
	case errors.Is(err, syscall.ENOBUFS), errors.Is(err, syscall.ENOMEM):
		return refuse(name, protocol.CodeTemporary, "the server is out of socket memory and cannot open %s now (%v); hopc retries", what, err)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return refuse(name, protocol.CodePortNotAllowed, "the server may not open %s: %v; ports below 1024 need privileges (CAP_NET_BIND_SERVICE) on the server: pick a higher remotePort", what, err)
	}
	return refuse(name, protocol.CodePortNotAllowed, "cannot open %s on the server: %v", what, err)
}

// bind opens the proxy's public port: the requested one, or with port 0
// a free one (inside allowPorts when that is set).
func (s *Server) bind(p *proxy, port int, allowPorts []config.PortRange) error {
	if port != 0 || len(allowPorts) == 0 {
		return s.bindPort(p, port)
	}
	var last error = errors.New("no port in allowPorts is free")
	tried := 0
	for _, r := range allowPorts {
		for port := r.Start; port <= r.End && tried < 256; port++ {
			if _, taken := s.portOwner(port); taken {
				continue
			}
			tried++
			if err := s.bindPort(p, port); err == nil {
				return nil
			} else {
				last = err
			}
		}
	}
	return last
}

func (s *Server) portOwner(port int) (*proxy, bool) {
	for _, p := range s.proxies {
		if p.port == port {
			return p, true
		}
	}
	return nil, false
}

func (s *Server) bindPort(p *proxy, port int) error {
	addr := net.JoinHostPort(s.cfg.ProxyBindAddr, strconv.Itoa(port))
	if p.typ == protocol.ProxyTCP {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		p.ln, p.port = ln, ln.Addr().(*net.TCPAddr).Port
		return nil
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return err
	}
	pc, err := net.ListenUDP("udp", ua)
	if err != nil {
		return err
	}
	p.pc, p.port = pc, pc.LocalAddr().(*net.UDPAddr).Port
	return nil
}

// closeProxy releases the proxy's port and waits for its goroutines.
func (s *Server) closeProxy(p *proxy) {
	p.stopAccepting()
	p.wg.Wait()
	if p.group != nil {
		s.leaveGroup(p)
	}
	s.mu.Lock()
	if s.proxies[p.key()] == p {
		delete(s.proxies, p.key())
	}
	s.mu.Unlock()
	p.owner.mu.Lock()
	delete(p.owner.proxies, p.name)
	p.owner.mu.Unlock()
}

// serveTCP accepts user connections until the port closes; a failed
// accept is waited out and retried (package acceptloop), so the port is
// never left bound with nobody accepting. The connections it started live
// on (tracked by s.users and s.connWG) so that closing a port lets them
// finish.
func (s *Server) serveTCP(p *proxy) {
	defer p.wg.Done()
	acceptloop.Serve(context.Background(), p.ln, func(c net.Conn) { s.serveUserConn(p, c) }, acceptloop.Options{Log: p.log})
}

// serveUserConn carries one user connection of tcp proxy p to its client.
func (s *Server) serveUserConn(p *proxy, c net.Conn) {
	s.users.Add(c)
	s.connWG.Add(1)
	go func() {
		st, err := p.owner.openStream(p.name, c.RemoteAddr().String(), c.LocalAddr().String())
		if err != nil {
			p.log.Debug("cannot open stream to client", "error", err)
			c.Close()
			s.users.Remove(c)
			s.connWG.Done()
			return
		}
		// This goroutine ends here; two small ones copy the bytes.
		p.conns.Opened()
		bridge.StartCounting(p.limit.Conn(c, bwlimit.Out), p.limit.Conn(st, bwlimit.In), &p.conns.In, &p.conns.Out, func(up, down int64) {
			p.conns.Closed()
			s.users.Remove(c)
			p.log.Debug("connection closed", "src", c.RemoteAddr().String(), "bytes_in", up, "bytes_out", down)
			s.connWG.Done()
		})
	}()
}

// proxyTypes are the proxy types a NewProxy may name; another is
// counted as "unknown" (it comes from a client).
var proxyTypes = map[string]bool{protocol.ProxyTCP: true, protocol.ProxyUDP: true, protocol.ProxySTCP: true,
	protocol.ProxySUDP: true, protocol.ProxyXTCP: true, protocol.ProxyXUDP: true, protocol.ProxyHTTP: true, protocol.ProxyHTTPS: true, protocol.ProxyTCPMux: true}

func proxyTypeLabel(t string) string {
	if proxyTypes[t] {
		return t
	}
	return "unknown"
}

// refusalCodes are the codes openProxy refuses with.
var refusalCodes = map[string]bool{protocol.CodeShuttingDown: true, protocol.CodeBadRequest: true, protocol.CodeProxyExists: true,
	protocol.CodeTooManyProxies: true, protocol.CodePortNotAllowed: true, protocol.CodePortInUse: true, protocol.CodeTemporary: true,
	protocol.CodeVhostDisabled: true, protocol.CodeDomainInUse: true, protocol.CodeGroupKey: true}

func refusalCode(c string) string {
	if refusalCodes[c] {
		return c
	}
	return "other"
}

// isSecret reports whether a proxy type has no public port and is reached
// through visitors.
func isSecret(typ string) bool {
	switch typ {
	case protocol.ProxySTCP, protocol.ProxySUDP, protocol.ProxyXTCP, protocol.ProxyXUDP:
		return true
	}
	return false
}

// allows reports whether a visitor authenticated as user may visit the
// secret proxy p (frp's allowUsers): an empty list admits only the
// owner's own user, "*" any user.
func (p *proxy) allows(user string) bool {
	if len(p.allow) == 0 {
		return user == p.owner.user
	}
	for _, u := range p.allow {
		if u == "*" || u == user {
			return true
		}
	}
	return false
}
