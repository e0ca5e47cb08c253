package config

import (
	"net/textproto"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultVhostHTTPTimeout is the default ServerConfig.VhostHTTPTimeout.
const DefaultVhostHTTPTimeout = 60 * time.Second

// domainRE is a host name in lower case, optionally "*." and a name below
// which every name matches.
var domainRE = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// headerNameRE is an HTTP header name (RFC 9110 token).
var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// labelRE is one label of a host name, the form of a subdomain.
var labelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// checkDomain reports a domain that is not a lower-case host name, with
// an optional leading "*." (how says where it comes from, for the hint).
func checkDomain(r *reporter, key, d string) {
	switch {
	case d == "":
		r.add(key, `empty; write a host name such as "app.example.com" or "*.example.com"`)
	case strings.Contains(d, ":"):
		r.add(key, "%q has a port; write only the host name (the port is the server's vhostHTTPPort or vhostHTTPSPort)", d)
	case strings.ToLower(d) != d:
		r.add(key, "%q has upper-case letters; host names are matched in lower case: write %q", d, strings.ToLower(d))
	case len(d) > 253 || !domainRE.MatchString(d):
		r.add(key, `%q is not a host name; use letters, digits, - and . (e.g. "app.example.com"), optionally starting with "*." for every name below a domain`, d)
	}
}

func (c *ServerConfig) validateVhost(r *reporter) {
	for _, f := range []struct {
		key  string
		port int
	}{{"vhostHTTPPort", c.VhostHTTPPort}, {"vhostHTTPSPort", c.VhostHTTPSPort}} {
		if f.port == 0 {
			continue
		}
		portRange(r, f.key, f.port, 0, " (0 turns it off)")
	}
	c.validateSharedPorts(r) // --- tcpmux: which vhost ports may be one (bindPort)
	if c.SubDomainHost != "" {
		checkDomain(r, "subDomainHost", c.SubDomainHost)
		if strings.HasPrefix(c.SubDomainHost, "*.") {
			r.add("subDomainHost", "%q is a wildcard; write the domain itself, e.g. %q: a proxy's subdomain goes in front of it", c.SubDomainHost, strings.TrimPrefix(c.SubDomainHost, "*."))
		}
	}
	positive(r, "vhostHTTPTimeout", c.VhostHTTPTimeout, "how long to wait for the response headers of a local web service")
	if c.Custom404Page != "" {
		checkReadable(r, "custom404Page", c.Custom404Page, "404 page")
	}
}

// vhostProxy converts the keys of http and https proxies, and reports
// them on the other types.
func (c conv) vhostProxy(p *ProxyConfig, key string, v rawProxy) {
	present := map[string]bool{
		"customDomains": v.CustomDomains != nil, "subdomain": v.Subdomain != nil,
		"locations": v.Locations != nil, "httpUser": v.HTTPUser != nil, "httpPassword": v.HTTPPassword != nil,
		"routeByHTTPUser": v.RouteByHTTPUser != nil, "hostHeaderRewrite": v.HostHeaderRewrite != nil,
		"requestHeaders": v.RequestHeaders.Set != nil, "responseHeaders": v.ResponseHeaders.Set != nil,
	}
	httpOnly := []string{"locations", "httpUser", "httpPassword", "routeByHTTPUser", "hostHeaderRewrite", "requestHeaders", "responseHeaders"}
	known := false
	for _, t := range ProxyTypes {
		known = known || t == p.Type
	}
	switch {
	case !known:
	case !p.Type.IsVhost():
		for _, k := range []string{"customDomains", "subdomain"} {
			if present[k] {
				c.r.add(key+"."+k, "only http, https and tcpmux proxies take %s; remove it from this %s proxy", k, p.Type)
			}
		}
		for _, k := range httpOnly {
			if present[k] {
				c.r.add(key+"."+k, "only http proxies take %s; remove it from this %s proxy", k, p.Type)
			}
		}
		return
	case p.Type == ProxyTCPMux: // --- tcpmux
		c.tcpmuxDomainKeys(p, key, v, present, httpOnly)
		return
	case p.Type == ProxyHTTPS:
		for _, k := range httpOnly {
			if present[k] {
				c.r.add(key+"."+k, "only http proxies take %s: an https proxy is routed by the TLS SNI and hops never sees its requests; remove it", k)
			}
		}
		if v.CustomDomains != nil {
			p.CustomDomains = *v.CustomDomains
		}
		c.str(&p.Subdomain, v.Subdomain)
		return
	}
	if v.CustomDomains != nil {
		p.CustomDomains = *v.CustomDomains
	}
	c.str(&p.Subdomain, v.Subdomain)
	if v.Locations != nil {
		p.Locations = *v.Locations
	}
	c.str(&p.HTTPUser, v.HTTPUser)
	c.str(&p.HTTPPassword, v.HTTPPassword)
	c.str(&p.RouteByHTTPUser, v.RouteByHTTPUser)
	c.str(&p.HostHeaderRewrite, v.HostHeaderRewrite)
	p.RequestHeaders.Set = v.RequestHeaders.Set
	p.ResponseHeaders.Set = v.ResponseHeaders.Set
}

// validateVhost checks an http or https proxy.
func (p ProxyConfig) validateVhost(r *reporter, key string) {
	if p.RemotePort != 0 {
		r.add(key+".remotePort", "%s proxies share the server's %s and are routed by domain: remove remotePort", p.Type, map[ProxyType]string{ProxyHTTP: "vhostHTTPPort", ProxyHTTPS: "vhostHTTPSPort", ProxyTCPMux: "tcpmuxHTTPConnectPort"}[p.Type])
	}
	if p.SecretKey != "" {
		r.add(key+".secretKey", "%s", onlySecret("secretKey", p.Type))
	}
	if len(p.AllowUsers) > 0 {
		r.add(key+".allowUsers", "%s", onlySecret("allowUsers", p.Type))
	}
	if len(p.CustomDomains) == 0 && p.Subdomain == "" {
		article := "an" // --- tcpmux: "a tcpmux proxy"
		if p.Type == ProxyTCPMux {
			article = "a"
		}
		r.add(key+".customDomains", `%s %s proxy needs a domain: set customDomains = ["app.example.com"], or subdomain = "app" when hops has subDomainHost`, article, p.Type)
	}
	seen := map[string]bool{}
	for i, d := range p.CustomDomains {
		k := key + ".customDomains[" + strconv.Itoa(i) + "]"
		checkDomain(r, k, d)
		if seen[d] {
			r.add(k, "%q is listed twice; remove one", d)
		}
		seen[d] = true
	}
	if p.Subdomain != "" && !labelRE.MatchString(p.Subdomain) {
		r.add(key+".subdomain", `%q is not a subdomain; write one label of lower-case letters, digits and - (e.g. "app", served as app.<subDomainHost of hops>), without dots or "*"`, p.Subdomain)
	}
	if p.Type == ProxyTCPMux {
		p.validateTCPMux(r, key) // --- tcpmux
	}
	if p.Type != ProxyHTTP {
		return
	}
	for i, l := range p.Locations {
		if !strings.HasPrefix(l, "/") || strings.ContainsAny(l, "?# \t") {
			r.add(key+".locations["+strconv.Itoa(i)+"]", `%q is not a URL path prefix; write one starting with "/", without query or spaces, e.g. "/api"`, l)
		}
	}
	if (p.HTTPUser == "") != (p.HTTPPassword == "") {
		r.add(key+".httpUser", "httpUser and httpPassword go together: set both to ask for basic authentication, or neither")
	}
	if strings.Contains(p.HTTPUser, ":") {
		r.add(key+".httpUser", "%q has a colon, which basic authentication cannot carry in a user name; remove it", p.HTTPUser)
	}
	if p.HostHeaderRewrite != "" && strings.ContainsAny(p.HostHeaderRewrite, " \t\r\n/") {
		r.add(key+".hostHeaderRewrite", "%q is not a host; write a host name, optionally with :port", p.HostHeaderRewrite)
	}
	for _, h := range []struct {
		name string
		ops  HeaderOps
	}{{"requestHeaders", p.RequestHeaders}, {"responseHeaders", p.ResponseHeaders}} {
		for name, val := range h.ops.Set {
			k := key + "." + h.name + ".set." + name
			if !headerNameRE.MatchString(name) {
				r.add(k, "%q is not a header name; use letters, digits and - (e.g. X-From)", name)
			} else if strings.ContainsFunc(val, func(c rune) bool { return c < 0x20 && c != '\t' || c == 0x7f }) {
				r.add(k, "the value has control characters (a newline?); write it on one line")
			} else if c := textproto.CanonicalMIMEHeaderKey(name); c == "Host" || c == "Content-Length" || c == "Transfer-Encoding" || c == "Connection" {
				r.add(k, "%s cannot be set here; it frames the message (use hostHeaderRewrite for Host)", c)
			}
		}
	}
}

// validateVhostRoutes reports two http (or two https) proxies of one
// client that claim the same domain, location and routeByHTTPUser: hops
// would refuse the second.
func (c *ClientConfig) validateVhostRoutes(r *reporter) {
	seen := map[string]string{}   // type, domain, location, user → key of the proxy
	groups := map[string]string{} // key of a proxy → its loadBalancer.group
	for i, p := range c.Proxies {
		if !p.Type.IsVhost() {
			continue
		}
		key := "proxies[" + strconv.Itoa(i) + "]"
		groups[key] = p.LoadBalancer.Group
		domains := slices.Clone(p.CustomDomains)
		if p.Subdomain != "" {
			domains = append(domains, p.Subdomain+".<subDomainHost>")
		}
		locs := p.Locations
		if len(locs) == 0 {
			locs = []string{"/"}
		}
		for _, d := range domains {
			for _, l := range locs {
				k := string(p.Type) + " " + d + " " + l + " " + p.RouteByHTTPUser
				if prev, dup := seen[k]; dup && prev != key && (p.LoadBalancer.Group == "" || groups[prev] != p.LoadBalancer.Group) {
					r.add(key+".customDomains", "%s location %q is also routed to %s%s; hops would refuse this proxy: give it another domain or location, or put both in one loadBalancer.group", d, l, prev, r.at(prev))
					return
				}
				seen[k] = key
			}
		}
	}
}
