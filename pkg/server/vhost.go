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

	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/transport"
	"github.com/hopproxy/hop/pkg/vhost"
)

// vhostState is the server's part of the http and https proxies: the two
// vhost servers (nil when their port is 0) and their listeners.
type vhostState struct {
	http      *vhost.HTTPServer
	https     *vhost.HTTPSServer
	httpLn    net.Listener
	httpsLn   net.Listener
	closeOnce sync.Once
}

func isVhost(typ string) bool { return typ == protocol.ProxyHTTP || typ == protocol.ProxyHTTPS }

// listenVhost binds vhostHTTPPort and vhostHTTPSPort (on proxyBindAddr)
// when set.
func (s *Server) listenVhost(ctx context.Context) error {
	v := &s.vhost
	if s.cfg.VhostHTTPPort != 0 {
		var page []byte
		if s.cfg.Custom404Page != "" {
			b, err := os.ReadFile(s.cfg.Custom404Page)
			if err != nil {
				return fmt.Errorf("custom404Page: %w", err)
			}
			page = b
		}
		addr := net.JoinHostPort(s.cfg.ProxyBindAddr, strconv.Itoa(s.cfg.VhostHTTPPort))
		ln, err := transport.Listen(ctx, addr, s.keepalive())
		if err != nil {
			return fmt.Errorf("listen on vhostHTTPPort %s: %w", addr, err)
		}
		log := s.log.With("listener", "vhost-http")
		v.httpLn = ln
		v.http = vhost.NewHTTP(vhost.HTTPConfig{ResponseHeaderTimeout: s.cfg.VhostHTTPTimeout.Duration, NotFound: page, Log: log})
		log.Info("listening", "addr", ln.Addr().String())
	}
	if s.cfg.VhostHTTPSPort != 0 {
		addr := net.JoinHostPort(s.cfg.ProxyBindAddr, strconv.Itoa(s.cfg.VhostHTTPSPort))
		ln, err := transport.Listen(ctx, addr, s.keepalive())
		if err != nil {
			if v.httpLn != nil {
				v.httpLn.Close()
			}
			return fmt.Errorf("listen on vhostHTTPSPort %s: %w", addr, err)
		}
		log := s.log.With("listener", "vhost-https")
		v.httpsLn = ln
		v.https = vhost.NewHTTPS(vhost.HTTPSConfig{HelloTimeout: s.cfg.Transport.HandshakeTimeout.Duration, Conns: &s.users, Log: log})
		log.Info("listening", "addr", ln.Addr().String())
	}
	return nil
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

func (s *Server) serveVhost() {
	if s.vhost.http != nil {
		s.vhost.http.Serve(s.vhost.httpLn)
	}
	if s.vhost.https != nil {
		s.vhost.https.Serve(s.vhost.httpsLn)
	}
}

// drainVhost stops accepting on the vhost ports and lets the requests in
// flight finish for up to grace; the returned func waits for that.
func (s *Server) drainVhost(grace time.Duration) (wait func()) {
	v := &s.vhost
	if v.https != nil {
		v.https.StopAccepting() // its connections are in s.users
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
		// Also when Serve never started the servers.
		for _, ln := range []net.Listener{s.vhost.httpLn, s.vhost.httpsLn} {
			if ln != nil {
				ln.Close()
			}
		}
	})
}

// openVhost registers an http or https proxy on its vhost server, with
// s.mu held. A domain another proxy holds is refused for this proxy only;
// the holder keeps it.
func (s *Server) openVhost(ss *session, m *protocol.NewProxy, p *proxy, full string) *protocol.NewProxyResp {
	portKey := map[string]string{protocol.ProxyHTTP: "vhostHTTPPort", protocol.ProxyHTTPS: "vhostHTTPSPort"}[p.typ]
	if (p.typ == protocol.ProxyHTTP && s.vhost.http == nil) || (p.typ == protocol.ProxyHTTPS && s.vhost.https == nil) {
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
	vport := s.cfg.VhostHTTPPort
	if p.typ == protocol.ProxyHTTPS {
		vport = s.cfg.VhostHTTPSPort
	}
	dst := net.JoinHostPort(s.cfg.ProxyBindAddr, strconv.Itoa(vport))
	dial := func(ctx context.Context, src string) (net.Conn, error) { return p.owner.openStream(p.name, src, dst) }
	var id uint64
	var err error
	if p.typ == protocol.ProxyHTTP {
		rt := &vhost.HTTPRoute{Name: full, Dial: dial, User: m.HTTPUser, Password: m.HTTPPassword,
			HostRewrite: m.HostHeaderRewrite, RequestHeaders: m.RequestHeaders, ResponseHeaders: m.ResponseHeaders, Conns: &p.conns,
			PerClient: m.ProxyProtocol}
		id, err = s.vhost.http.Add(vhost.Rule{Domains: domains, Locations: m.Locations, User: m.RouteByHTTPUser, Group: m.Group, GroupKey: m.GroupKey}, rt)
		if err == nil {
			p.unroute = func() { s.vhost.http.Remove(id) }
		}
	} else {
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
