package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/admit"
	"github.com/hopproxy/hop/pkg/bwlimit"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/sniff"
	"github.com/hopproxy/hop/pkg/transport"
	"github.com/hopproxy/hop/pkg/vhost"
)

// vhostState is the server's part of the http, https and tcpmux
// proxies: the vhost servers (nil when their port is 0) and their
// listeners, and, when one of their ports is bindPort, the sniffing
// listener that shares it with the control listener.
type vhostState struct {
	http      *vhost.HTTPServer
	https     *vhost.HTTPSServer
	tcpmux    *vhost.TCPMuxServer
	httpLn    net.Listener
	httpsLn   net.Listener
	tcpmuxLn  net.Listener
	shared    *sniff.Listener // nil when no vhost port is bindPort
	closeOnce sync.Once
}

func isVhost(typ string) bool {
	return typ == protocol.ProxyHTTP || typ == protocol.ProxyHTTPS || typ == protocol.ProxyTCPMux
}

// listenVhost binds vhostHTTPPort, vhostHTTPSPort and
// tcpmuxHTTPConnectPort (on proxyBindAddr) when set. A port equal to
// bindPort is not bound again: ctrl, the control listener, is shared
// with it by sniffing the first bytes of each connection (package
// sniff, vhost.Shared.Classify), and the returned listener is the
// control listener to accept from (ctrl itself when nothing shares it).
// On error every listener, ctrl included, is closed.
func (s *Server) listenVhost(ctx context.Context, ctrl net.Listener) (net.Listener, error) {
	v := &s.vhost
	var opened []net.Listener
	fail := func(err error) (net.Listener, error) {
		for _, ln := range opened {
			ln.Close()
		}
		ctrl.Close()
		return nil, err
	}
	var sh vhost.Shared
	listen := func(key string, port int) (net.Listener, bool, error) {
		if port == s.cfg.BindPort {
			return nil, true, nil
		}
		addr := net.JoinHostPort(s.cfg.ProxyBindAddr, strconv.Itoa(port))
		ln, err := transport.Listen(ctx, addr, s.keepalive())
		if err != nil {
			return nil, false, fmt.Errorf("listen on %s %s: %w", key, addr, err)
		}
		opened = append(opened, ln)
		return ln, false, nil
	}
	if s.cfg.VhostHTTPPort != 0 {
		var page []byte
		if s.cfg.Custom404Page != "" {
			b, err := os.ReadFile(s.cfg.Custom404Page)
			if err != nil {
				return fail(fmt.Errorf("custom404Page: %w", err))
			}
			page = b
		}
		ln, shared, err := listen("vhostHTTPPort", s.cfg.VhostHTTPPort)
		if err != nil {
			return fail(err)
		}
		v.httpLn, sh.HTTP = ln, shared
		v.http = vhost.NewHTTP(vhost.HTTPConfig{ResponseHeaderTimeout: s.cfg.VhostHTTPTimeout.Duration, NotFound: page, Log: s.log.With("listener", "vhost-http")})
	}
	if s.cfg.VhostHTTPSPort != 0 {
		ln, shared, err := listen("vhostHTTPSPort", s.cfg.VhostHTTPSPort)
		if err != nil {
			return fail(err)
		}
		v.httpsLn = ln
		v.https = vhost.NewHTTPS(vhost.HTTPSConfig{HelloTimeout: s.cfg.Transport.HandshakeTimeout.Duration, Conns: &s.users, Log: s.log.With("listener", "vhost-https")})
		if shared {
			sh.HTTPS = v.https
		}
	}
	if s.cfg.TCPMuxHTTPConnectPort != 0 {
		ln, shared, err := listen("tcpmuxHTTPConnectPort", s.cfg.TCPMuxHTTPConnectPort)
		if err != nil {
			return fail(err)
		}
		v.tcpmuxLn, sh.TCPMux = ln, shared
		v.tcpmux = vhost.NewTCPMux(vhost.TCPMuxConfig{Passthrough: s.cfg.TCPMuxPassthrough, HeaderTimeout: s.cfg.Transport.HandshakeTimeout.Duration,
			Conns: &s.users, Log: s.log.With("listener", "tcpmux-httpconnect")})
	}
	if sh.HTTP || sh.HTTPS != nil || sh.TCPMux {
		sh.ControlALPN = transport.ALPN // hopc's TLS, whatever its server name
		// The control listener's limits on handshakes in progress, in
		// all and per source address, also bound the connections being
		// sorted (a gate of their own: a control connection then enters
		// the login gate as before).
		gate, err := admit.New(admit.Limits{Max: s.cfg.Limits.MaxHandshakes, PerIP: s.cfg.Limits.MaxHandshakesPerIP})
		if err != nil {
			return fail(err)
		}
		v.shared = sniff.New(ctrl, vhost.NumQueues, sh.Classify, sniff.Config{Timeout: s.cfg.Transport.HandshakeTimeout.Duration,
			MaxPending: s.cfg.Limits.MaxHandshakes, Admit: gate.Enter, Log: s.log.With("listener", "shared-bindPort")})
		q := func(i int, on bool) net.Listener {
			if !on {
				v.shared.Queue(i).Close() // nothing comes to it
				return nil
			}
			return v.shared.Queue(i)
		}
		ctrl = q(vhost.QueueControl, true)
		if ln := q(vhost.QueueHTTP, sh.HTTP); ln != nil {
			v.httpLn = ln
		}
		if ln := q(vhost.QueueHTTPS, sh.HTTPS != nil); ln != nil {
			v.httpsLn = ln
		}
		if ln := q(vhost.QueueTCPMux, sh.TCPMux); ln != nil {
			v.tcpmuxLn = ln
		}
	}
	for _, l := range []struct {
		name   string
		ln     net.Listener
		shared bool
	}{{"vhost-http", v.httpLn, sh.HTTP}, {"vhost-https", v.httpsLn, sh.HTTPS != nil}, {"tcpmux-httpconnect", v.tcpmuxLn, sh.TCPMux}} {
		if l.ln != nil {
			s.log.Info("listening", "listener", l.name, "addr", l.ln.Addr().String(), "shared_with_bindPort", l.shared)
		}
	}
	return ctrl, nil
}

// VhostHTTPAddr and VhostHTTPSAddr are the addresses of the vhost
// listeners (after Listen), nil when off.
func (s *Server) VhostHTTPAddr() net.Addr {
	if s.vhost.httpLn == nil {
		return nil
	}
	return s.vhost.httpLn.Addr()
}

func (s *Server) VhostHTTPSAddr() net.Addr {
	if s.vhost.httpsLn == nil {
		return nil
	}
	return s.vhost.httpsLn.Addr()
}

// TCPMuxAddr is the address of the tcpmux listener (after Listen), nil
// when off.
func (s *Server) TCPMuxAddr() net.Addr {
	if s.vhost.tcpmuxLn == nil {
		return nil
	}
	return s.vhost.tcpmuxLn.Addr()
}

func (s *Server) serveVhost() {
	if s.vhost.http != nil {
		s.vhost.http.Serve(s.vhost.httpLn)
	}
	if s.vhost.https != nil {
		s.vhost.https.Serve(s.vhost.httpsLn)
	}
	if s.vhost.tcpmux != nil {
		s.vhost.tcpmux.Serve(s.vhost.tcpmuxLn)
	}
	if s.vhost.shared != nil {
		s.vhost.shared.Start()
	}
}

// drainVhost stops accepting on the vhost ports and lets the requests in
// flight finish for up to grace; the returned func waits for that.
func (s *Server) drainVhost(grace time.Duration) (wait func()) {
	v := &s.vhost
	if v.https != nil {
		v.https.StopAccepting() // its connections are in s.users
	}
	if v.tcpmux != nil {
		v.tcpmux.StopAccepting() // its tunnels are in s.users
	}
	if v.http == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		v.http.Shutdown(ctx)
	}()
	return func() { <-done }
}

// closeVhost closes the vhost servers and waits for their goroutines.
func (s *Server) closeVhost() {
	s.vhost.closeOnce.Do(func() {
		if s.vhost.http != nil {
			s.vhost.http.Close()
		}
		if s.vhost.https != nil {
			s.vhost.https.Close()
		}
		if s.vhost.tcpmux != nil {
			s.vhost.tcpmux.Close()
		}
		// Also when Serve never started the servers.
		for _, ln := range []net.Listener{s.vhost.httpLn, s.vhost.httpsLn, s.vhost.tcpmuxLn} {
			if ln != nil {
				ln.Close()
			}
		}
		if s.vhost.shared != nil {
			s.vhost.shared.Close() // and the control listener, closed before (shutdown) or now
		}
	})
}

// vhostDst is the address a user reached on a vhost port: proxyBindAddr,
// or bindAddr when the port is bindPort (then shared with it).
func (s *Server) vhostDst(port int) string {
	host := s.cfg.ProxyBindAddr
	if port == s.cfg.BindPort {
		host = s.cfg.BindAddr
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// openVhost registers an http, https or tcpmux proxy on its vhost
// server, with s.mu held. A domain another proxy holds is refused for
// this proxy only; the holder keeps it.
func (s *Server) openVhost(ss *session, m *protocol.NewProxy, p *proxy, full string) *protocol.NewProxyResp {
	portKey := map[string]string{protocol.ProxyHTTP: "vhostHTTPPort", protocol.ProxyHTTPS: "vhostHTTPSPort", protocol.ProxyTCPMux: "tcpmuxHTTPConnectPort"}[p.typ]
	if (p.typ == protocol.ProxyHTTP && s.vhost.http == nil) || (p.typ == protocol.ProxyHTTPS && s.vhost.https == nil) || (p.typ == protocol.ProxyTCPMux && s.vhost.tcpmux == nil) {
		return refuse(m.Name, protocol.CodeVhostDisabled, "this server serves no %s proxies: its %s is not set; ask its operator to set it in hops.toml", p.typ, portKey)
	}
	domains := append([]string(nil), m.CustomDomains...)
	if m.Subdomain != "" {
		host := s.cfg.SubDomainHost
		if host == "" {
			return refuse(m.Name, protocol.CodeVhostDisabled, "subdomain %q needs the server's subDomainHost, which is not set; use customDomains, or ask the server's operator to set subDomainHost", m.Subdomain)
		}
		domains = append(domains, m.Subdomain+"."+host)
	}
	// The address the user reached, for a PROXY protocol header hopc may
	// write (transport.proxyProtocolVersion).
	vport := map[string]int{protocol.ProxyHTTP: s.cfg.VhostHTTPPort, protocol.ProxyHTTPS: s.cfg.VhostHTTPSPort, protocol.ProxyTCPMux: s.cfg.TCPMuxHTTPConnectPort}[p.typ]
	dst := s.vhostDst(vport)
	dial := func(ctx context.Context, src string) (net.Conn, error) { return p.owner.openStream(p.name, src, dst) }
	var id uint64
	var err error
	switch p.typ {
	case protocol.ProxyHTTP:
		rt := &vhost.HTTPRoute{Name: full, Dial: dial, User: m.HTTPUser, Password: m.HTTPPassword,
			HostRewrite: m.HostHeaderRewrite, RequestHeaders: m.RequestHeaders, ResponseHeaders: m.ResponseHeaders, Conns: &p.conns,
			PerClient: m.ProxyProtocol}
		id, err = s.vhost.http.Add(vhost.Rule{Domains: domains, Locations: m.Locations, User: m.RouteByHTTPUser, Group: m.Group, GroupKey: m.GroupKey}, rt)
		if err == nil {
			p.unroute = func() { s.vhost.http.Remove(id) }
		}
	case protocol.ProxyTCPMux:
		// transport.bandwidthLimitMode = "server": the proxy's buckets,
		// shared by all its tunnels, as on a tcp proxy's port.
		wrap := func(user, st net.Conn) (net.Conn, net.Conn) {
			return p.limit.Conn(user, bwlimit.Out), p.limit.Conn(st, bwlimit.In)
		}
		rt := &vhost.TCPMuxRoute{Name: full, Dial: dial, User: m.HTTPUser, Password: m.HTTPPassword, Wrap: wrap, Conns: &p.conns}
		id, err = s.vhost.tcpmux.Add(vhost.Rule{Domains: domains, User: m.RouteByHTTPUser, Group: m.Group, GroupKey: m.GroupKey}, rt)
		if err == nil {
			p.unroute = func() { s.vhost.tcpmux.Remove(id) }
		}
	default:
		id, err = s.vhost.https.Add(vhost.Rule{Domains: domains, Group: m.Group, GroupKey: m.GroupKey}, &vhost.TLSRoute{Name: full, Dial: dial, Conns: &p.conns})
		if err == nil {
			p.unroute = func() { s.vhost.https.Remove(id) }
		}
	}
	if err != nil {
		if errors.Is(err, vhost.ErrGroupKey) {
			return refuse(m.Name, protocol.CodeGroupKey, "%v; write the same loadBalancer.groupKey in every member of the group", err)
		}
		if errors.Is(err, vhost.ErrTaken) {
			return refuse(m.Name, protocol.CodeDomainInUse, "%v; give this proxy another domain or location (it is retried, and gets it once the other proxy goes)", err)
		}
		return refuse(m.Name, protocol.CodeBadRequest, "%v", err)
	}
	p.domains = domains
	p.log = ss.log.With("proxy", full, "type", p.typ, "domains", domains)
	s.proxies[p.key()] = p
	ss.mu.Lock()
	ss.proxies[p.name] = p
	ss.mu.Unlock()
	if m.Group != "" {
		p.log.Info("proxy started in load-balancing group", "port", portKey, "group", m.Group)
	} else {
		p.log.Info("proxy started", "port", portKey)
	}
	return &protocol.NewProxyResp{Name: p.name, Domains: domains}
}
