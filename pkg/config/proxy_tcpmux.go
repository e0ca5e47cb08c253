package config

import (
	"slices"
	"strings"
)

// MultiplexerHTTPConnect is the one Multiplexer of a tcpmux proxy, as in
// frp: connections are HTTP CONNECT requests routed by their host.
const MultiplexerHTTPConnect = "httpconnect"

// validateSharedPorts checks tcpmuxHTTPConnectPort and which of the vhost
// ports are one: any of them may be bindPort (hops then sniffs the first
// bytes of each connection); otherwise each needs a port of its own, and
// none may be the web server's.
func (c *ServerConfig) validateSharedPorts(r *reporter) {
	if c.TCPMuxHTTPConnectPort != 0 {
		portRange(r, "tcpmuxHTTPConnectPort", c.TCPMuxHTTPConnectPort, 0, " (0 turns it off)")
	}
	type vport struct {
		key  string
		port int
	}
	var seen []vport
	for _, f := range []vport{{"vhostHTTPPort", c.VhostHTTPPort}, {"vhostHTTPSPort", c.VhostHTTPSPort}, {"tcpmuxHTTPConnectPort", c.TCPMuxHTTPConnectPort}} {
		if f.port <= 0 || f.port > 65535 {
			continue
		}
		if i := slices.IndexFunc(seen, func(v vport) bool { return v.port == f.port }); i >= 0 && f.port != c.BindPort {
			r.add(f.key, "%d is also %s%s; they need a port each (only bindPort may be shared, as hops tells hopc's TLS, https SNI and plain HTTP apart by their first bytes there)", f.port, seen[i].key, r.at(seen[i].key))
			continue
		}
		seen = append(seen, f)
		if c.WebServer.Port != 0 && f.port == c.WebServer.Port {
			r.add(f.key, "%d is also webServer.port, where the dashboard and API listen; use another port", f.port)
			continue
		}
		if f.port == c.BindPort && c.ProxyBindAddr != c.BindAddr && r.ok("bindAddr", "proxyBindAddr") {
			r.warn(f.key, "%d is bindPort, so it is served on bindAddr %q together with hopc's connections, not on proxyBindAddr %q", f.port, c.BindAddr, c.ProxyBindAddr)
		}
	}
}

// tcpmuxProxy converts the multiplexer key, and reports it on the other
// types. A tcpmux proxy without it is reported, as frp refuses it.
func (c conv) tcpmuxProxy(p *ProxyConfig, key string, v rawProxy) {
	switch {
	case p.Type == ProxyTCPMux:
		if c.required(key+".multiplexer", v.Multiplexer != nil, `a tcpmux proxy needs multiplexer = "httpconnect" (HTTP CONNECT routed by its host, frp's only multiplexer)`) {
			p.Multiplexer = *v.Multiplexer
		}
	case v.Multiplexer != nil && slices.Contains(ProxyTypes, p.Type):
		c.r.add(key+".multiplexer", "only tcpmux proxies take multiplexer; remove it from this %s proxy", p.Type)
	}
}

// tcpmuxDomainKeys converts the vhost keys of a tcpmux proxy: its
// domains, and of the http keys only the Proxy-Authorization ones.
func (c conv) tcpmuxDomainKeys(p *ProxyConfig, key string, v rawProxy, present map[string]bool, httpOnly []string) {
	for _, k := range httpOnly {
		if k == "httpUser" || k == "httpPassword" || k == "routeByHTTPUser" {
			continue
		}
		if present[k] {
			c.r.add(key+"."+k, "a tcpmux proxy does not take %s: hops only reads the CONNECT request and tunnels the bytes after it, never seeing the requests inside; remove it", k)
		}
	}
	if v.CustomDomains != nil {
		p.CustomDomains = *v.CustomDomains
	}
	c.str(&p.Subdomain, v.Subdomain)
	c.str(&p.HTTPUser, v.HTTPUser)
	c.str(&p.HTTPPassword, v.HTTPPassword)
	c.str(&p.RouteByHTTPUser, v.RouteByHTTPUser)
}

// validateTCPMux checks the keys only a tcpmux proxy has.
func (p ProxyConfig) validateTCPMux(r *reporter, key string) {
	switch {
	case !r.ok(key + ".multiplexer"):
	case p.Multiplexer == "":
		r.add(key+".multiplexer", `missing; a tcpmux proxy needs multiplexer = "httpconnect"`)
	case p.Multiplexer != MultiplexerHTTPConnect:
		r.add(key+".multiplexer", `%q is not a multiplexer; write multiplexer = "httpconnect" (HTTP CONNECT routed by its host, the only one, as in frp)`, p.Multiplexer)
	}
	if (p.HTTPUser == "") != (p.HTTPPassword == "") {
		r.add(key+".httpUser", "httpUser and httpPassword go together: set both to require them in the CONNECT request's Proxy-Authorization, or neither")
	}
	if strings.Contains(p.HTTPUser, ":") {
		r.add(key+".httpUser", "%q has a colon, which basic authentication cannot carry in a user name; remove it", p.HTTPUser)
	}
}
