package config

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
)

// Client plugins: a [proxies.plugin] table, with frp's keys (frp v0.52+),
// makes hopc serve the proxy's connections itself (pkg/plugin) instead of
// connecting them to localIP:localPort.

// PluginType names a client plugin.
type PluginType string

// The plugin types hop has, with frp's names.
const (
	PluginUnixSocket PluginType = "unix_domain_socket"
	PluginSOCKS5     PluginType = "socks5"
	PluginHTTPProxy  PluginType = "http_proxy"
	PluginStaticFile PluginType = "static_file"
	PluginHTTPS2HTTP PluginType = "https2http"
	PluginHTTP2HTTPS PluginType = "http2https"
)

// missingPluginType stands for a [proxies.plugin] without type, which
// conv has reported.
const missingPluginType PluginType = "\x00missing"

// PluginTypes lists the plugin types, in the order the docs give them.
var PluginTypes = []PluginType{PluginUnixSocket, PluginSOCKS5, PluginHTTPProxy, PluginStaticFile, PluginHTTPS2HTTP, PluginHTTP2HTTPS}

// PluginProxyTypes are the proxy types a plugin may serve: the stream
// types, as in frp. On an http proxy the plugin gets the requests hops
// forwards (static_file, http2https); on an https proxy the TLS
// connections routed by SNI (https2http terminates them in hopc).
var PluginProxyTypes = []ProxyType{ProxyTCP, ProxySTCP, ProxyXTCP, ProxyHTTP, ProxyHTTPS}

// PluginConfig is the [proxies.plugin] table of a proxy. Type empty means
// no plugin. Each type takes only its own keys (see pluginKeys).
type PluginConfig struct {
	// Type is one of PluginTypes.
	Type PluginType `toml:"type,omitempty"`
	// UnixPath (unix_domain_socket; required) is the unix socket every
	// connection is joined to, e.g. "/var/run/docker.sock".
	UnixPath string `toml:"unixPath,omitempty"`
	// Username and Password (socks5) require RFC 1929 username/password
	// authentication; both empty allow clients without authentication.
	Username string `toml:"username,omitempty"`
	Password string `toml:"password,omitempty"`
	// HTTPUser and HTTPPassword (http_proxy: Proxy-Authorization;
	// static_file: Authorization) require HTTP basic authentication; both
	// empty require none.
	HTTPUser     string `toml:"httpUser,omitempty"`
	HTTPPassword string `toml:"httpPassword,omitempty"`
	// LocalPath (static_file; required) is the directory served.
	LocalPath string `toml:"localPath,omitempty"`
	// StripPrefix (static_file) is a URL path prefix removed before the
	// file is looked up, e.g. "static" serves /static/a.txt from
	// LocalPath/a.txt.
	StripPrefix string `toml:"stripPrefix,omitempty"`
	// LocalAddr (https2http, http2https; required) is host:port of the
	// HTTP (https2http) or HTTPS (http2https) backend.
	LocalAddr string `toml:"localAddr,omitempty"`
	// CrtPath and KeyPath (https2http) are the PEM certificate chain and
	// key the plugin terminates TLS with, both or neither; neither (as in
	// frp) serves a self-signed certificate generated at start.
	CrtPath string `toml:"crtPath,omitempty"`
	KeyPath string `toml:"keyPath,omitempty"`
	// HostHeaderRewrite (https2http, http2https) replaces the Host of
	// every request sent to the backend; empty keeps the user's.
	HostHeaderRewrite string `toml:"hostHeaderRewrite,omitempty"`
	// RequestHeaders (https2http, http2https) are set on every request
	// sent to the backend.
	RequestHeaders HeaderOps `toml:"requestHeaders,omitzero"`
}

// HeaderOps changes HTTP headers (frp's requestHeaders and
// responseHeaders tables, of http proxies and of plugins).
type HeaderOps struct {
	// Set sets each header to its value, replacing the request's own.
	Set map[string]string `toml:"set,omitempty"`
}

type rawHeaderOps struct {
	Set map[string]string `toml:"set"`
}

type rawPlugin struct {
	Type              *string       `toml:"type"`
	UnixPath          *string       `toml:"unixPath"`
	Username          *string       `toml:"username"`
	Password          *string       `toml:"password"`
	HTTPUser          *string       `toml:"httpUser"`
	HTTPPassword      *string       `toml:"httpPassword"`
	LocalPath         *string       `toml:"localPath"`
	StripPrefix       *string       `toml:"stripPrefix"`
	LocalAddr         *string       `toml:"localAddr"`
	CrtPath           *string       `toml:"crtPath"`
	KeyPath           *string       `toml:"keyPath"`
	HostHeaderRewrite *string       `toml:"hostHeaderRewrite"`
	RequestHeaders    *rawHeaderOps `toml:"requestHeaders"`
}

// pluginKeys are the keys each plugin type takes, besides type.
var pluginKeys = map[PluginType][]string{
	PluginUnixSocket: {"unixPath"},
	PluginSOCKS5:     {"username", "password"},
	PluginHTTPProxy:  {"httpUser", "httpPassword"},
	PluginStaticFile: {"localPath", "stripPrefix", "httpUser", "httpPassword"},
	PluginHTTPS2HTTP: {"localAddr", "crtPath", "keyPath", "hostHeaderRewrite", "requestHeaders"},
	PluginHTTP2HTTPS: {"localAddr", "hostHeaderRewrite", "requestHeaders"},
}

// frpOnlyPlugins are frp's plugin types that hop does not have, with what
// to do instead.
var frpOnlyPlugins = map[string]string{
	"https2https": "hop has no https2https plugin: forward the TLS stream untouched with a plain tcp proxy to the HTTPS service (localIP, localPort), which keeps its own certificate",
	"http2http":   "hop has no http2http plugin: an http proxy (type = \"http\") to the HTTP service does the same, with hostHeaderRewrite and requestHeaders.set",
	"tls2raw":     "hop has no tls2raw plugin: terminate TLS in the local service, or use https2http in front of an HTTP service",
	"virtual_net": "hop has no virtual_net plugin (frp's is experimental): use a socks5 plugin to reach the network behind this hopc",
}

func pluginTypeList() string {
	s := make([]string, len(PluginTypes))
	for i, t := range PluginTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// plugin converts the [proxies.plugin] table of the proxy at key (v is
// known to have one) into p, reporting the keys its type does not take
// and the local service keys a plugin replaces.
func (c conv) plugin(p *ProxyConfig, key string, v rawProxy) {
	pk := key + ".plugin"
	rp := v.Plugin
	// frp ignores localIP and localPort when a plugin is set, so an frp
	// config that has both works as it is: they are ignored here too,
	// with a warning (0 and "" silently: they are how the zero values of
	// a plugin proxy marshal).
	p.LocalIP, p.LocalPort = "", 0
	if v.LocalPort != nil && *v.LocalPort != 0 {
		c.r.warn(key+".localPort", "ignored: a proxy with a [proxies.plugin] has no local service port, the plugin serves its connections; remove localPort")
	}
	if v.LocalIP != nil && *v.LocalIP != "" {
		c.r.warn(key+".localIP", "ignored: a proxy with a [proxies.plugin] has no local service address, the plugin serves its connections; remove localIP")
	}
	if !c.required(pk+".type", rp.Type != nil, fmt.Sprintf(`add the plugin's type, e.g. type = "socks5" (one of: %s)`, pluginTypeList())) {
		// validate must still see a plugin (else it asks for localPort),
		// one it knows the missing type of was reported for.
		p.Plugin.Type = missingPluginType
		return
	}
	pc := &p.Plugin
	pc.Type = PluginType(*rp.Type)
	fields := map[string]struct {
		dst *string
		v   *string
	}{
		"unixPath":          {&pc.UnixPath, rp.UnixPath},
		"username":          {&pc.Username, rp.Username},
		"password":          {&pc.Password, rp.Password},
		"httpUser":          {&pc.HTTPUser, rp.HTTPUser},
		"httpPassword":      {&pc.HTTPPassword, rp.HTTPPassword},
		"localPath":         {&pc.LocalPath, rp.LocalPath},
		"stripPrefix":       {&pc.StripPrefix, rp.StripPrefix},
		"localAddr":         {&pc.LocalAddr, rp.LocalAddr},
		"crtPath":           {&pc.CrtPath, rp.CrtPath},
		"keyPath":           {&pc.KeyPath, rp.KeyPath},
		"hostHeaderRewrite": {&pc.HostHeaderRewrite, rp.HostHeaderRewrite},
	}
	keys, known := pluginKeys[pc.Type]
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		f := fields[k]
		if f.v == nil {
			continue
		}
		if known && !slices.Contains(keys, k) {
			c.r.add(pk+"."+k, "%s", notPluginKey(k, pc.Type))
			continue
		}
		*f.dst = *f.v
	}
	if rp.RequestHeaders != nil {
		if known && !slices.Contains(keys, "requestHeaders") {
			c.r.add(pk+".requestHeaders", "%s", notPluginKey("requestHeaders", pc.Type))
		} else if len(rp.RequestHeaders.Set) > 0 {
			pc.RequestHeaders.Set = rp.RequestHeaders.Set
		}
	}
}

func notPluginKey(k string, t PluginType) string {
	var takes []string
	for _, pt := range PluginTypes {
		if slices.Contains(pluginKeys[pt], k) {
			takes = append(takes, string(pt))
		}
	}
	return fmt.Sprintf("a %s plugin does not take %s (only %s do); remove it, or its keys are: type, %s", t, k, strings.Join(takes, ", "), strings.Join(pluginKeys[t], ", "))
}

// validatePlugin checks the plugin of a proxy that has one (Plugin.Type
// set).
func (p ProxyConfig) validatePlugin(r *reporter, key string) {
	pk := key + ".plugin"
	pc := p.Plugin
	if p.LocalPort != 0 {
		r.add(key+".localPort", "a proxy with a [proxies.plugin] has no local service port: the plugin serves its connections; remove localPort (or the plugin)")
	}
	if p.Type.IsDatagram() {
		r.add(pk, "a %s proxy carries UDP datagrams, and plugins serve TCP streams (a SOCKS5 or HTTP client, a unix socket, a web server); use a plugin on a %s proxy", p.Type, typeList(PluginProxyTypes))
	} else if slices.Contains(ProxyTypes, p.Type) && !slices.Contains(PluginProxyTypes, p.Type) {
		r.add(pk, "a %s proxy does not take a plugin; plugins run on %s proxies", p.Type, typeList(PluginProxyTypes))
	}
	if _, ok := pluginKeys[pc.Type]; !ok {
		if pc.Type == missingPluginType { // reported by conv
			return
		}
		msg := fmt.Sprintf("%q is not a plugin type; use one of: %s", pc.Type, pluginTypeList())
		if why, frp := frpOnlyPlugins[string(pc.Type)]; frp {
			msg = fmt.Sprintf("%q is one of frp's plugins; %s (hop's plugins: %s)", pc.Type, why, pluginTypeList())
		}
		r.add(pk+".type", "%s", msg)
		return
	}
	switch pc.Type {
	case PluginUnixSocket:
		if pc.UnixPath == "" {
			r.add(pk+".unixPath", `missing or empty; set the unix socket to connect to, e.g. unixPath = "/var/run/docker.sock"`)
		}
	case PluginSOCKS5:
		credentials(r, pk, "username", "password", pc.Username, pc.Password)
	case PluginHTTPProxy:
		credentials(r, pk, "httpUser", "httpPassword", pc.HTTPUser, pc.HTTPPassword)
	case PluginStaticFile:
		credentials(r, pk, "httpUser", "httpPassword", pc.HTTPUser, pc.HTTPPassword)
		switch fi, err := os.Stat(pc.LocalPath); {
		case pc.LocalPath == "":
			r.add(pk+".localPath", `missing or empty; set the directory to serve, e.g. localPath = "/var/www/blog"`)
		case err != nil:
			r.add(pk+".localPath", "cannot use %q: %v; set an existing directory (relative paths start at the working directory)", pc.LocalPath, unwrapPath(err))
		case !fi.IsDir():
			r.add(pk+".localPath", "%q is not a directory; static_file serves the files of a directory", pc.LocalPath)
		}
	case PluginHTTPS2HTTP:
		checkHostPort(r, pk+".localAddr", pc.LocalAddr, "HTTP backend", "127.0.0.1:80")
		switch {
		case pc.CrtPath == "" && pc.KeyPath == "":
			// As in frp: a generated self-signed certificate.
		case pc.CrtPath == "":
			r.add(pk+".crtPath", `missing or empty while keyPath is set; set the PEM certificate of keyPath, e.g. crtPath = "server.crt" (or neither, for a generated self-signed certificate)`)
		case pc.KeyPath == "":
			r.add(pk+".keyPath", `missing or empty while crtPath is set; set the PEM key of crtPath, e.g. keyPath = "server.key" (or neither, for a generated self-signed certificate)`)
		default:
			checkReadable(r, pk+".crtPath", pc.CrtPath, "certificate")
			checkReadable(r, pk+".keyPath", pc.KeyPath, "key")
			if r.ok(pk+".crtPath", pk+".keyPath") {
				if _, err := tls.LoadX509KeyPair(pc.CrtPath, pc.KeyPath); err != nil {
					r.add(pk+".crtPath", "cannot load the certificate and key (%s, %s): %v; both must be PEM and belong together", pc.CrtPath, pc.KeyPath, err)
				}
			}
		}
		checkHeaders(r, pk, pc)
	case PluginHTTP2HTTPS:
		checkHostPort(r, pk+".localAddr", pc.LocalAddr, "HTTPS backend", "127.0.0.1:443")
		checkHeaders(r, pk, pc)
	}
}

func credentials(r *reporter, pk, uk, pwk, user, pass string) {
	switch {
	case user == "" && pass != "":
		r.add(pk+"."+uk, "missing or empty while %s is set; set both to require authentication, or neither", pwk)
	case user != "" && pass == "":
		r.add(pk+"."+pwk, "missing or empty while %s is set; set both to require authentication, or neither", uk)
	case len(user) > 255:
		r.add(pk+"."+uk, "is %d bytes; at most 255", len(user))
	case len(pass) > 255:
		r.add(pk+"."+pwk, "is %d bytes; at most 255", len(pass))
	}
}

func checkHostPort(r *reporter, key, addr, what, example string) {
	if addr == "" {
		r.add(key, "missing or empty; set host:port of the %s, e.g. localAddr = %q", what, example)
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		r.add(key, "%q is not host:port; write the %s as e.g. %q", addr, what, example)
	}
}

func checkHeaders(r *reporter, pk string, pc PluginConfig) {
	if pc.HostHeaderRewrite != "" && !validHost(pc.HostHeaderRewrite) {
		r.add(pk+".hostHeaderRewrite", "%q is not a valid Host header; write a host name, optionally with :port", pc.HostHeaderRewrite)
	}
	names := make([]string, 0, len(pc.RequestHeaders.Set))
	for k := range pc.RequestHeaders.Set {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		hk := pk + ".requestHeaders.set." + k
		if !validToken(k) {
			r.add(hk, "%q is not a valid HTTP header name", k)
		} else if !validFieldValue(pc.RequestHeaders.Set[k]) {
			r.add(hk, "the value is not a valid HTTP header value (no control characters or newlines)")
		}
	}
}

func typeList(ts []ProxyType) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// validToken reports whether s is an HTTP token (RFC 9110 5.6.2), as a
// header name must be.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validFieldValue reports whether s may be an HTTP header value: no
// control characters other than tab.
func validFieldValue(s string) bool {
	for _, c := range []byte(s) {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost reports whether s may be a Host header: a host name or
// address, optionally with a port, without spaces, controls or a path.
func validHost(s string) bool {
	for _, c := range []byte(s) {
		if c <= ' ' || c == 0x7f || strings.IndexByte("/?#@\"<>\\", c) >= 0 {
			return false
		}
	}
	return true
}
