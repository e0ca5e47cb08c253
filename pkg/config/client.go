package config

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ClientConfig is the configuration of hopc. Build one with DefaultClient
// (then call Validate) or load it with LoadClient / ParseClient (already
// validated).
type ClientConfig struct {
	// ServerAddr is the host name or IP of hops. Default "127.0.0.1".
	// Empty after loading a file that sets ServerAddrs.
	ServerAddr string `toml:"serverAddr,omitempty"`
	// ServerPort is the bindPort of hops, 1..65535. Default 7000. Zero
	// after loading a file that sets ServerAddrs.
	ServerPort int `toml:"serverPort,omitempty"`
	// --- nodeset
	// ServerAddrs lists the hops nodes to attach to, host:port each (a
	// host may be a name standing for every address it resolves to; see
	// pkg/nodeset), at most MaxServerAddrs, each once. When it is not
	// empty it replaces ServerAddr and ServerPort, which a file must then
	// leave out and Validate does not check. Use ServerEndpoints to read
	// either form. Default empty.
	ServerAddrs []string `toml:"serverAddrs,omitempty"`
	// ClientID identifies this client to the server, [A-Za-z0-9._-]{1,64}.
	// Empty (the default) means the program picks one per process.
	ClientID string `toml:"clientID"`
	// User is the user this client logs in as (frp's key): "" (the
	// default) or [A-Za-z0-9._-]{1,64}. hops checks the token of that user
	// (see AuthConfig.TokenFor) and keeps the proxy names of each user
	// apart, so two users may both have a proxy "ssh".
	User string `toml:"user"`
	// Auth holds the token of this client's user. Auth.Token is required;
	// Auth.Users must be empty (it is a key of hops).
	Auth AuthConfig `toml:"auth"`
	// GracePeriod is how long shutdown waits for connections to drain.
	// Default 5s.
	GracePeriod Duration `toml:"gracePeriod"`

	Transport ClientTransportConfig `toml:"transport"`
	Reconnect ReconnectConfig       `toml:"reconnect"`
	Heartbeat HeartbeatConfig       `toml:"heartbeat"`
	Mux       MuxConfig             `toml:"mux"`
	Log       LogConfig             `toml:"log"`
	Limits    ClientLimits          `toml:"limits"`
	P2P       ClientP2PConfig       `toml:"p2p"`
	// EnablePrometheus makes Client.MetricsHandler serve the Prometheus
	// metrics of hopc, for GET /metrics on the web server. Default false.
	EnablePrometheus bool `toml:"enablePrometheus"`
	// WebServer is the admin API (hopc status, reload, stop). Off by
	// default (Port 0).
	WebServer WebServerConfig `toml:"webServer"`

	// Proxies are the [[proxies]] entries, in file order.
	Proxies []ProxyConfig `toml:"proxies,omitempty"`
	// Visitors are the [[visitors]] entries, in file order.
	Visitors []VisitorConfig `toml:"visitors,omitempty"`

	src *source // where a loaded config came from, for Warnings
}

// ClientLimits is the [limits] table of hopc.
type ClientLimits struct {
	// MaxStreamsPerSession caps the streams the server may have open or
	// pending in the session, >= 1. Default DefaultMaxStreamsPerSession.
	MaxStreamsPerSession int `toml:"maxStreamsPerSession"`
}

// ClientP2PConfig is the [p2p] table of hopc: how it reaches the other
// client of an xtcp or xudp proxy directly.
type ClientP2PConfig struct {
	// PortMapping asks the home gateway (PCP, NAT-PMP or UPnP IGD, see
	// pkg/portmap) to forward a port to each P2P attempt's socket, and
	// offers that port to the peer as a candidate. Used only when the
	// client has xtcp/xudp proxies or visitors. Default true.
	PortMapping bool `toml:"portMapping"`
}

// ClientTransportConfig is the client's [transport] table.
type ClientTransportConfig struct {
	TLS ClientTLSConfig `toml:"tls"`
	// DialTimeout bounds the TCP connect to the server. Default 10s.
	DialTimeout Duration `toml:"dialTimeout"`
	// HandshakeTimeout bounds the TLS and login handshake. Default 10s.
	HandshakeTimeout Duration           `toml:"handshakeTimeout"`
	TCPKeepalive     TCPKeepaliveConfig `toml:"tcpKeepalive"`
	// ConnectServerLocalIP is the source address of the connections to
	// the server (frp's key): an IP address of this host; empty (the
	// default) lets the system choose.
	ConnectServerLocalIP string `toml:"connectServerLocalIP"`
}

// ClientTLSConfig is the client's [transport.tls] table.
type ClientTLSConfig struct {
	// ServerName overrides the name checked in the server certificate;
	// empty uses ServerAddr.
	ServerName string `toml:"serverName"`
	// TrustedCAFile is a PEM bundle of CAs to verify the server's chain
	// and name with; empty does not verify the certificate (the login's
	// channel-bound token proofs protect the session either way).
	TrustedCAFile string `toml:"trustedCaFile"`
	// CertSHA256 pins the SHA-256 of the server's leaf certificate (DER):
	// 64 lowercase hex digits, or empty for no pin. Loading accepts
	// upper case and colons and normalizes them away.
	CertSHA256 string `toml:"certSHA256"`
}

// ReconnectConfig is the [reconnect] table: backoff between attempts to
// reach the server.
type ReconnectConfig struct {
	// MinDelay is the first delay after a failure. Default 1s.
	MinDelay Duration `toml:"minDelay"`
	// MaxDelay caps the delay, >= MinDelay. Default 30s.
	MaxDelay Duration `toml:"maxDelay"`
	// StableAfter is the uptime after which a connection counts as healthy
	// and the backoff resets. Default 60s.
	StableAfter Duration `toml:"stableAfter"`
}

// ProxyType is the kind of traffic a proxy forwards, and how it is reached.
type ProxyType string

// Proxy types accepted in [[proxies]]. tcp and udp get a public port on
// the server. The others are secret: they have no public port, and only a
// [[visitors]] entry of another hopc that knows their secretKey reaches
// them, relayed through hops (stcp, sudp) or directly over a hole punched
// through both NATs (xtcp, xudp).
const (
	ProxyTCP  ProxyType = "tcp"
	ProxyUDP  ProxyType = "udp"
	ProxySTCP ProxyType = "stcp"
	ProxySUDP ProxyType = "sudp"
	ProxyXTCP ProxyType = "xtcp"
	ProxyXUDP ProxyType = "xudp"
	// ProxyHTTP and ProxyHTTPS share the server's vhostHTTPPort and
	// vhostHTTPSPort, routed by domain (see pkg/vhost).
	ProxyHTTP  ProxyType = "http"
	ProxyHTTPS ProxyType = "https"
	// --- tcpmux: ProxyTCPMux shares the server's tcpmuxHTTPConnectPort,
	// routed by the host of an HTTP CONNECT request.
	ProxyTCPMux ProxyType = "tcpmux"
)

// ProxyTypes lists the accepted proxy types.
var ProxyTypes = []ProxyType{ProxyTCP, ProxyUDP, ProxySTCP, ProxySUDP, ProxyXTCP, ProxyXUDP, ProxyHTTP, ProxyHTTPS, ProxyTCPMux}

// IsVhost reports whether t is served on a shared port of the server and
// routed by domain (http, https, tcpmux) rather than on a port of its
// own.
func (t ProxyType) IsVhost() bool {
	return t == ProxyHTTP || t == ProxyHTTPS || t == ProxyTCPMux
}

// IsSecret reports whether t is reached through visitors that know a
// secret key (stcp, sudp, xtcp, xudp) rather than on a public port. These
// are also the types a [[visitors]] entry may have.
func (t ProxyType) IsSecret() bool {
	return t == ProxySTCP || t == ProxySUDP || t == ProxyXTCP || t == ProxyXUDP
}

// IsDatagram reports whether t forwards UDP datagrams (udp, sudp, xudp)
// rather than a TCP stream.
func (t ProxyType) IsDatagram() bool {
	return t == ProxyUDP || t == ProxySUDP || t == ProxyXUDP
}

// IsP2P reports whether t tries a direct path between the two hopc
// (xtcp, xudp), falling back to relaying through hops.
func (t ProxyType) IsP2P() bool {
	return t == ProxyXTCP || t == ProxyXUDP
}

// Defaults of the keys a file may leave out of [[proxies]] and [[visitors]]
// entries, for the types that have them.
const (
	// DefaultUDPIdleTimeout is the default IdleTimeout of udp, sudp and
	// xudp proxies and of sudp and xudp visitors.
	DefaultUDPIdleTimeout = 60 * time.Second
	// DefaultFallbackTimeout is the default VisitorConfig.FallbackTimeout.
	DefaultFallbackTimeout = 1500 * time.Millisecond
	// DefaultP2PKeepaliveInterval is the default
	// VisitorConfig.KeepaliveInterval.
	DefaultP2PKeepaliveInterval = 10 * time.Second
	// DefaultP2PKeepaliveTimeout is the default
	// VisitorConfig.KeepaliveTimeout.
	DefaultP2PKeepaliveTimeout = 30 * time.Second
	// DefaultP2PRetryInterval is the default VisitorConfig.RetryInterval.
	DefaultP2PRetryInterval = 30 * time.Second
)

// MinSecretKeyLen is the least number of characters of a secretKey.
const MinSecretKeyLen = 8

// ProxyConfig is one [[proxies]] entry: a local service made reachable
// through hops, on a public port of the server (tcp, udp) or by visitors
// that know its secret key (stcp, sudp, xtcp, xudp).
type ProxyConfig struct {
	// Name identifies the proxy, [A-Za-z0-9._-]{1,64}, unique per client
	// among proxies and visitors. Visitors name a secret proxy by it.
	Name string `toml:"name"`
	// Type is one of ProxyTypes.
	Type ProxyType `toml:"type"`
	// LocalIP is the address of the local service. Default "127.0.0.1".
	LocalIP string `toml:"localIP"`
	// LocalPort is the port of the local service, 1..65535.
	LocalPort int `toml:"localPort"`
	// RemotePort (tcp, udp) is the public port on the server, 0..65535; 0
	// lets the server choose. Secret types have no public port: it is 0,
	// and a file must not set it to anything else.
	RemotePort int `toml:"remotePort"`
	// IdleTimeout (udp, sudp, xudp) forgets a UDP peer after this long
	// without traffic. Default DefaultUDPIdleTimeout for those types, must
	// be 0 for the others.
	IdleTimeout Duration `toml:"idleTimeout,omitzero"`
	// SecretKey (stcp, sudp, xtcp, xudp; required) is shared with the
	// visitors of this proxy. It keys the authentication and encryption
	// between visitor and owner, so it has at least MinSecretKeyLen
	// characters. Must be empty for tcp and udp.
	SecretKey string `toml:"secretKey,omitempty"`
	// AllowUsers (stcp, sudp, xtcp, xudp) lists the users (the user key of
	// their hopc, as authenticated by hops) whose visitors may come in, as
	// in frp. Empty (the default) allows only the owner's own user; an
	// entry "*" allows any user. Visitors still need SecretKey. See
	// AllowsUser. Must be empty for tcp and udp.
	AllowUsers []string `toml:"allowUsers,omitempty"`

	// --- plugins: client plugins ([proxies.plugin], see proxy_plugins.go)
	// Plugin, when its Type is set, serves the proxy's connections in
	// hopc itself (pkg/plugin) instead of connecting them to
	// localIP:localPort, which must then be left out. Only the stream
	// types in PluginProxyTypes take a plugin.
	Plugin PluginConfig `toml:"plugin,omitzero"`
	// --- vhost: http and https proxies (frp's keys and meanings).
	// CustomDomains (http, https) are the host names routed to this
	// proxy; "*.example.com" matches any name under example.com, and the
	// most specific name wins. CustomDomains or Subdomain is required.
	CustomDomains []string `toml:"customDomains,omitempty"`
	// Subdomain (http, https) is served as Subdomain.<subDomainHost of
	// hops>; hops refuses it when it has no subDomainHost.
	Subdomain string `toml:"subdomain,omitempty"`
	// Locations (http) are URL path prefixes routed to this proxy; the
	// longest prefix matching a request wins. Empty means "/".
	Locations []string `toml:"locations,omitempty"`
	// HTTPUser and HTTPPassword (http) make hops ask for HTTP basic
	// authentication before forwarding; both or neither.
	HTTPUser     string `toml:"httpUser,omitempty"`
	HTTPPassword string `toml:"httpPassword,omitempty"`
	// RouteByHTTPUser (http) routes only requests whose basic-auth user
	// is this one to this proxy, so that proxies can share a domain.
	RouteByHTTPUser string `toml:"routeByHTTPUser,omitempty"`
	// HostHeaderRewrite (http) replaces the Host header sent to the
	// local service.
	HostHeaderRewrite string `toml:"hostHeaderRewrite,omitempty"`
	// RequestHeaders (http) sets headers on requests to the local
	// service; ResponseHeaders on responses to the browser.
	RequestHeaders  HeaderOps `toml:"requestHeaders,omitzero"`
	ResponseHeaders HeaderOps `toml:"responseHeaders,omitzero"`
	// --- ppbw: PROXY protocol, bandwidth limit, groups, health checks (see proxy_ppbw.go)
	// Transport is the [proxies.transport] table.
	Transport ProxyTransport `toml:"transport,omitzero"`
	// LoadBalancer is the [proxies.loadBalancer] table (tcp).
	LoadBalancer ProxyLoadBalancer `toml:"loadBalancer,omitzero"`
	// HealthCheck is the [proxies.healthCheck] table.
	HealthCheck ProxyHealthCheck `toml:"healthCheck,omitzero"`
	// --- tcpmux: HTTP CONNECT multiplexing (see proxy_tcpmux.go)
	// Multiplexer (tcpmux; required) is how the server tells this
	// proxy's connections from others on its port: "httpconnect", by the
	// host of an HTTP CONNECT request (frp's only multiplexer). A tcpmux
	// proxy also takes customDomains, subdomain, httpUser and
	// httpPassword (checked against Proxy-Authorization) and
	// routeByHTTPUser.
	Multiplexer string `toml:"multiplexer,omitempty"`
}

// AllowsUser reports whether a visitor logged in as user visitor may reach
// p, a proxy of a client logged in as user owner: AllowUsers holds "*" or
// visitor, or AllowUsers is empty and visitor is owner.
func (p ProxyConfig) AllowsUser(owner, visitor string) bool {
	if len(p.AllowUsers) == 0 {
		return visitor == owner
	}
	return slices.Contains(p.AllowUsers, "*") || slices.Contains(p.AllowUsers, visitor)
}

// VisitorConfig is one [[visitors]] entry: a local port that reaches a
// secret proxy (stcp, sudp, xtcp, xudp) of another hopc, found on hops by
// its name.
type VisitorConfig struct {
	// Name identifies the visitor, [A-Za-z0-9._-]{1,64}, unique per client
	// among proxies and visitors.
	Name string `toml:"name"`
	// Type is the type of the proxy visited: stcp, sudp, xtcp or xudp.
	Type ProxyType `toml:"type"`
	// ServerName is the name of the proxy visited, on the other hopc.
	ServerName string `toml:"serverName"`
	// ServerUser is the user of the other hopc, which owns the proxy
	// (frp's key): "" (the default) means this client's own User, else
	// [A-Za-z0-9._-]{1,64}. See OwnerUser.
	ServerUser string `toml:"serverUser,omitempty"`
	// SecretKey is the secretKey of that proxy, at least MinSecretKeyLen
	// characters.
	SecretKey string `toml:"secretKey"`
	// BindAddr is the local address the visitor listens on.
	// Default "127.0.0.1".
	BindAddr string `toml:"bindAddr"`
	// BindPort is the local port the visitor listens on, 1..65535: TCP
	// for stcp and xtcp, UDP for sudp and xudp.
	BindPort int `toml:"bindPort"`
	// IdleTimeout (sudp, xudp) forgets a local UDP peer after this long
	// without traffic. Default DefaultUDPIdleTimeout; must be 0 for stcp
	// and xtcp.
	IdleTimeout Duration `toml:"idleTimeout,omitzero"`
	// FallbackTimeout (xtcp, xudp) is accepted so that older configs still
	// load, with a warning; it has no effect: connections start over the
	// relay at once and move to the direct path when it comes up.
	// Default DefaultFallbackTimeout.
	FallbackTimeout Duration `toml:"fallbackTimeout,omitzero"`
	// KeepaliveInterval (xtcp, xudp) is the time between keepalives on the
	// punched path, so that the NAT mappings survive idle periods. Keep it
	// under the shortest UDP timeout of the NATs on the path, often 20-30s.
	// "auto" learns this host's NAT UDP mapping lifetime (probes to hops'
	// STUN server) and uses a safe fraction of it, at most half the
	// keepaliveTimeout; see AutoP2PKeepaliveStart. Default
	// DefaultP2PKeepaliveInterval.
	KeepaliveInterval Duration `toml:"keepaliveInterval,omitzero"`
	// KeepaliveTimeout (xtcp, xudp) is the silence after which the punched
	// path is declared dead and punched again; more than KeepaliveInterval.
	// Default DefaultP2PKeepaliveTimeout.
	KeepaliveTimeout Duration `toml:"keepaliveTimeout,omitzero"`
	// RetryInterval (xtcp, xudp) is, while relaying through hops, how often
	// to try a direct path again. Default DefaultP2PRetryInterval.
	RetryInterval Duration `toml:"retryInterval,omitzero"`
}

// OwnerUser returns the user whose proxy v visits: ServerUser, or self
// (the User of the visiting client) when ServerUser is empty.
func (v VisitorConfig) OwnerUser(self string) string {
	if v.ServerUser != "" {
		return v.ServerUser
	}
	return self
}

// DefaultClient returns the client defaults: no proxies and an empty
// Auth.Token, so the result does not pass Validate until a token is set.
func DefaultClient() ClientConfig {
	return ClientConfig{
		ServerAddr:  "127.0.0.1",
		ServerPort:  7000,
		GracePeriod: Dur(5 * time.Second),
		Transport: ClientTransportConfig{
			DialTimeout:      Dur(10 * time.Second),
			HandshakeTimeout: Dur(10 * time.Second),
			TCPKeepalive:     defaultTCPKeepalive(),
		},
		Reconnect: ReconnectConfig{
			MinDelay:    Dur(1 * time.Second),
			MaxDelay:    Dur(30 * time.Second),
			StableAfter: Dur(60 * time.Second),
		},
		Heartbeat: defaultHeartbeat(),
		Mux:       defaultMux(),
		Log:       defaultLog(),
		Limits:    ClientLimits{MaxStreamsPerSession: DefaultMaxStreamsPerSession},
		P2P:       ClientP2PConfig{PortMapping: true},
		WebServer: WebServerConfig{Addr: "127.0.0.1"},
	}
}

// DefaultProxy returns a proxy of type t with the defaults of the keys a
// file may leave out (LocalIP, and IdleTimeout for udp, sudp and xudp).
// Name, LocalPort, RemotePort and SecretKey are left for the caller.
func DefaultProxy(t ProxyType) ProxyConfig {
	p := ProxyConfig{Type: t, LocalIP: "127.0.0.1"}
	if t.IsDatagram() {
		p.IdleTimeout = Dur(DefaultUDPIdleTimeout)
	}
	return p
}

// DefaultVisitor returns a visitor of type t with the defaults of the keys
// a file may leave out (BindAddr; IdleTimeout for sudp and xudp; the
// timeouts and intervals of the direct path for xtcp and xudp). Name,
// ServerName, SecretKey and BindPort are left for the caller.
func DefaultVisitor(t ProxyType) VisitorConfig {
	v := VisitorConfig{Type: t, BindAddr: "127.0.0.1"}
	if t.IsDatagram() {
		v.IdleTimeout = Dur(DefaultUDPIdleTimeout)
	}
	if t.IsP2P() {
		v.FallbackTimeout = Dur(DefaultFallbackTimeout)
		v.KeepaliveInterval = Dur(DefaultP2PKeepaliveInterval)
		v.KeepaliveTimeout = Dur(DefaultP2PKeepaliveTimeout)
		v.RetryInterval = Dur(DefaultP2PRetryInterval)
	}
	return v
}

// ServerAddress returns ServerAddr:ServerPort, ready for net.Dial: the
// single-server form. ServerEndpoints covers ServerAddrs too.
func (c *ClientConfig) ServerAddress() string {
	return net.JoinHostPort(c.ServerAddr, strconv.Itoa(c.ServerPort))
}

// Validate checks a config built in code. The returned error is an *Error
// naming each offending key; it matches ErrInvalid.
func (c *ClientConfig) Validate() error {
	r := newReporter("", nil)
	c.validate(r)
	return r.err()
}

// Warnings returns remarks about c that do not make it invalid (a short
// token, for example), one line each, formatted like the problems of an
// *Error: with file and line for a config from LoadClient or ParseClient.
// nil when there are none.
func (c *ClientConfig) Warnings() []string {
	r := newReporter("", nil)
	if c.src != nil {
		r = newReporter(c.src.file, c.src.ix)
		r.warnings = append(r.warnings, c.src.convWarnings...)
	}
	c.validate(r)
	return r.warningLines()
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func (c *ClientConfig) validate(r *reporter) {
	if !c.validateServerAddrs(r) { // --- nodeset: serverAddrs replaces serverAddr and serverPort
		checkHost(r, "serverAddr", c.ServerAddr, "serverPort")
		portRange(r, "serverPort", c.ServerPort, 1, "")
	}
	if c.ClientID != "" && !nameRE.MatchString(c.ClientID) {
		r.add("clientID", "%q is not a valid client ID; use 1-64 of A-Z a-z 0-9 . _ - (or leave it empty to get one per process)", c.ClientID)
	}
	if c.User != "" && !nameRE.MatchString(c.User) {
		r.add("user", "%q is not a valid user name; use 1-64 of A-Z a-z 0-9 . _ - (or leave it empty)", c.User)
	}
	if c.Auth.Token == "" {
		r.add("auth.token", `missing or empty; set the secret shared with the server (or, when hops lists this user in [[auth.users]], that user's token), e.g. auth.token = "${HOP_TOKEN}" with HOP_TOKEN exported`)
	} else {
		checkToken(r, "auth.token", c.Auth.Token)
	}
	if len(c.Auth.Users) > 0 {
		r.add("auth.users", "only hops takes auth.users; hopc logs in as one user: set user at the top level and that user's token in auth.token")
	}
	nonNegative(r, "gracePeriod", c.GracePeriod, `"0s" closes connections at once on shutdown`)

	tls := c.Transport.TLS
	if tls.TrustedCAFile != "" {
		checkReadable(r, "transport.tls.trustedCaFile", tls.TrustedCAFile, "CA file")
	}
	if tls.CertSHA256 != "" {
		if n, ok := normalizeSHA256(tls.CertSHA256); !ok {
			r.add("transport.tls.certSHA256", "%q is not a SHA-256 fingerprint; write 64 hex digits, colons allowed (openssl x509 -in cert.pem -noout -fingerprint -sha256 prints one)", tls.CertSHA256)
		} else if n != tls.CertSHA256 {
			r.add("transport.tls.certSHA256", "%q is not normalized; write it as %q (lower case, no colons)", tls.CertSHA256, n)
		}
	}
	positive(r, "transport.dialTimeout", c.Transport.DialTimeout, "")
	positive(r, "transport.handshakeTimeout", c.Transport.HandshakeTimeout, "")
	if ip := c.Transport.ConnectServerLocalIP; ip != "" {
		if a, err := netip.ParseAddr(ip); err != nil || a.Zone() != "" {
			r.add("transport.connectServerLocalIP", "%q is not an IP address; write one of this host's addresses, e.g. \"192.0.2.10\", or leave it empty to let the system choose", ip)
		}
	}
	c.Transport.TCPKeepalive.validate(r, "transport.tcpKeepalive")
	c.WebServer.validate(r, 0, false)
	checkPrometheus(r, c.EnablePrometheus, c.WebServer.Port)

	rc := c.Reconnect
	positive(r, "reconnect.minDelay", rc.MinDelay, "")
	positive(r, "reconnect.maxDelay", rc.MaxDelay, "")
	if r.ok("reconnect.minDelay", "reconnect.maxDelay") && rc.MaxDelay.Duration < rc.MinDelay.Duration {
		r.add("reconnect.maxDelay", "%s is shorter than reconnect.minDelay (%s); raise maxDelay or lower minDelay",
			formatDuration(rc.MaxDelay.Duration), formatDuration(rc.MinDelay.Duration))
	}
	positive(r, "reconnect.stableAfter", rc.StableAfter, "uptime after which the backoff resets")

	c.Heartbeat.validate(r, "heartbeat", false)
	c.Mux.validate(r, "mux")
	c.Log.validate(r, "log")
	atLeastOne(r, "limits.maxStreamsPerSession", c.Limits.MaxStreamsPerSession, DefaultMaxStreamsPerSession, "streams the server may have open or pending in the session")

	names := make(map[string]string)  // name → key of the proxy or visitor that has it
	remote := make(map[string]string) // "type/port" → key of the proxy that has it
	groups := make(map[string]string) // key of a proxy in remote → its loadBalancer.group
	for i, p := range c.Proxies {
		key := "proxies[" + strconv.Itoa(i) + "]"
		p.validate(r, key)
		if p.Name != "" && r.ok(key+".name") {
			if prev, dup := names[p.Name]; dup {
				r.add(key+".name", "%q is already the name of %s%s; proxy names must be unique", p.Name, prev, r.at(prev))
			} else {
				names[p.Name] = key
			}
		}
		if p.RemotePort > 0 && !p.Type.IsSecret() && r.ok(key+".remotePort", key+".type") {
			k := string(p.Type) + "/" + strconv.Itoa(p.RemotePort)
			prev, dup := remote[k]
			switch {
			case dup && p.LoadBalancer.Group != "" && groups[prev] == p.LoadBalancer.Group:
				// --- ppbw: members of one load-balancing group share the port
			case dup:
				r.add(key+".remotePort", "%s port %d is already used by %s%s; use another port, or 0 to let the server choose", p.Type, p.RemotePort, prev, r.at(prev))
			default:
				remote[k] = key
				groups[key] = p.LoadBalancer.Group
			}
		}
	}

	c.validateVhostRoutes(r) // --- vhost

	type bound struct{ key, addr string }
	binds := make(map[string][]bound) // "stream/port" or "datagram/port" → visitors listening there
	for i, v := range c.Visitors {
		key := "visitors[" + strconv.Itoa(i) + "]"
		v.validate(r, key)
		if v.Name != "" && r.ok(key+".name") {
			if prev, dup := names[v.Name]; dup {
				r.add(key+".name", "%q is already the name of %s%s; names must be unique among proxies and visitors, so that logs name one thing", v.Name, prev, r.at(prev))
			} else {
				names[v.Name] = key
			}
		}
		if !v.Type.IsSecret() || !r.ok(key+".type", key+".bindAddr", key+".bindPort") {
			continue
		}
		family := "stream visitors (stcp, xtcp)"
		if v.Type.IsDatagram() {
			family = "datagram visitors (sudp, xudp)"
		}
		k := family + "/" + strconv.Itoa(v.BindPort)
		for _, b := range binds[k] {
			if !bindOverlap(b.addr, v.BindAddr) {
				continue
			}
			here := net.JoinHostPort(v.BindAddr, strconv.Itoa(v.BindPort))
			what := "is already used by " + b.key + r.at(b.key)
			if b.addr != v.BindAddr {
				what = "overlaps " + net.JoinHostPort(b.addr, strconv.Itoa(v.BindPort)) + " of " + b.key + r.at(b.key)
			}
			r.add(key+".bindPort", "%s %s; two %s cannot listen on the same address and port: change one bindPort", here, what, family)
			break
		}
		binds[k] = append(binds[k], bound{key, v.BindAddr})
	}
}

// bindOverlap reports whether listening on host a and on host b with the
// same port and protocol conflict: the same host, or a wildcard address
// ("0.0.0.0" takes every IPv4 address; "::" every address, as on a
// dual-stack host).
func bindOverlap(a, b string) bool {
	if a == b {
		return true
	}
	ia, ib := net.ParseIP(a), net.ParseIP(b)
	switch {
	case ia == nil || ib == nil:
		return false
	case ia.Equal(ib):
		return true
	case ia.IsUnspecified():
		return ia.To4() == nil || ib.To4() != nil
	case ib.IsUnspecified():
		return ib.To4() == nil || ia.To4() != nil
	}
	return false
}

func (p ProxyConfig) validate(r *reporter, key string) {
	if !nameRE.MatchString(p.Name) {
		r.add(key+".name", "%q is not a valid proxy name; use 1-64 of A-Z a-z 0-9 . _ -", p.Name)
	}
	if !slices.Contains(ProxyTypes, p.Type) {
		r.add(key+".type", "%q is not a proxy type; use one of: %s", p.Type, proxyTypeList())
	}
	if p.Plugin.Type == "" {
		checkHost(r, key+".localIP", p.LocalIP, "localPort")
		portRange(r, key+".localPort", p.LocalPort, 1, " (the port of the local service)")
	} else {
		p.validatePlugin(r, key)
	}
	p.validatePPBW(r, key)
	switch {
	case p.Type.IsVhost():
		p.validateVhost(r, key)
	case p.Type.IsSecret():
		if p.RemotePort != 0 {
			r.add(key+".remotePort", "%s proxies have no public port on the server; visitors reach them through [[visitors]] entries on another hopc: remove remotePort", p.Type)
		}
		checkSecretKey(r, key+".secretKey", p.SecretKey, p.Type, "proxies")
		for i, u := range p.AllowUsers {
			if u != "*" && !nameRE.MatchString(u) {
				r.add(key+".allowUsers["+strconv.Itoa(i)+"]", `%q is not a valid user name; use 1-64 of A-Z a-z 0-9 . _ - (the user key of a visiting hopc), or "*" for any user`, u)
			}
		}
	default:
		portRange(r, key+".remotePort", p.RemotePort, 0, " (0 lets the server choose)")
		if !slices.Contains(ProxyTypes, p.Type) {
			break
		}
		if p.SecretKey != "" {
			r.add(key+".secretKey", "%s", onlySecret("secretKey", p.Type))
		}
		if len(p.AllowUsers) > 0 {
			r.add(key+".allowUsers", "%s", onlySecret("allowUsers", p.Type))
		}
	}
	switch {
	case p.Type.IsDatagram():
		positive(r, key+".idleTimeout", p.IdleTimeout, "how long a UDP peer may stay silent")
	case slices.Contains(ProxyTypes, p.Type):
		if p.IdleTimeout.Duration != 0 {
			r.add(key+".idleTimeout", "%s", onlyDatagramProxy(p.Type))
		}
	}
}

func (v VisitorConfig) validate(r *reporter, key string) {
	if !nameRE.MatchString(v.Name) {
		r.add(key+".name", "%q is not a valid visitor name; use 1-64 of A-Z a-z 0-9 . _ -", v.Name)
	}
	switch {
	case v.Type.IsSecret():
	case v.Type == ProxyTCP || v.Type == ProxyUDP:
		r.add(key+".type", "%q is not a visitor type: %s proxies are reached on the server's public remotePort and need no visitor; visitors are for the secret types: use one of %s, the type of the proxy visited", v.Type, v.Type, visitorTypeList())
	default:
		r.add(key+".type", "%q is not a visitor type; use one of: %s (the type of the proxy visited)", v.Type, visitorTypeList())
	}
	if !nameRE.MatchString(v.ServerName) {
		r.add(key+".serverName", "%q is not a valid proxy name; write the name of the proxy to visit, as in its [[proxies]] entry on the other hopc (1-64 of A-Z a-z 0-9 . _ -)", v.ServerName)
	}
	if v.ServerUser != "" && !nameRE.MatchString(v.ServerUser) {
		r.add(key+".serverUser", "%q is not a valid user name; write the user key of the hopc that owns the proxy (1-64 of A-Z a-z 0-9 . _ -), or leave it out for this client's own user", v.ServerUser)
	}
	checkSecretKey(r, key+".secretKey", v.SecretKey, v.Type, "visitors")
	checkHost(r, key+".bindAddr", v.BindAddr, "bindPort")
	portRange(r, key+".bindPort", v.BindPort, 1, " (the local port the visitor listens on)")

	switch {
	case v.Type.IsDatagram():
		positive(r, key+".idleTimeout", v.IdleTimeout, "how long a local UDP peer may stay silent")
	case v.Type.IsSecret():
		if v.IdleTimeout.Duration != 0 {
			r.add(key+".idleTimeout", "%s", onlyDatagramVisitor(v.Type))
		}
	}
	p2p := []struct {
		name string
		d    Duration
		why  string
	}{
		{"fallbackTimeout", v.FallbackTimeout, "accepted for older configs; it has no effect"},
		{"keepaliveInterval", v.KeepaliveInterval, "keepalives keep the NAT mappings of the direct path alive; keep it under the NATs' UDP timeout, often 20-30s"},
		{"keepaliveTimeout", v.KeepaliveTimeout, "silence after which the direct path is punched again"},
		{"retryInterval", v.RetryInterval, "while relaying, how often to try a direct path again"},
	}
	for _, f := range p2p {
		switch {
		case v.Type.IsP2P() && f.d.Auto:
		case v.Type.IsP2P():
			positive(r, key+"."+f.name, f.d, f.why)
		case v.Type.IsSecret():
			if f.d.Duration != 0 {
				r.add(key+"."+f.name, "%s", onlyP2PVisitor(f.name, v.Type))
			}
		}
	}
	if v.Type.IsP2P() && r.ix.has(key+".fallbackTimeout") {
		r.warn(key+".fallbackTimeout", "has no effect any more: a connection starts over the relay at once and moves to the direct path when the punch succeeds, without waiting or a reset; remove the key")
	}
	iv, to := key+".keepaliveInterval", key+".keepaliveTimeout"
	if v.Type.IsP2P() && v.KeepaliveInterval.Auto {
		checkAutoP2PKeepalive(r, to, v.KeepaliveTimeout)
	} else if v.Type.IsP2P() && r.ok(iv, to) && v.KeepaliveTimeout.Duration <= v.KeepaliveInterval.Duration {
		r.add(to, "%s is not longer than keepaliveInterval (%s), so a healthy direct path would be declared dead between two keepalives; set keepaliveTimeout to at least 3× the interval (%q) or shorten keepaliveInterval",
			formatDuration(v.KeepaliveTimeout.Duration), formatDuration(v.KeepaliveInterval.Duration), formatDuration(3*v.KeepaliveInterval.Duration))
	}
}

// checkSecretKey checks the secretKey of a secret proxy or of a visitor
// (section is "proxies" or "visitors"). It never prints the key.
func checkSecretKey(r *reporter, key, secret string, t ProxyType, section string) {
	path := "between visitor and owner"
	if t.IsP2P() {
		path = "of the P2P path"
	}
	how := `secretKey = "${HOP_SECRET}" with a long random HOP_SECRET exported (the same key in every visitor of this proxy)`
	if section == "visitors" {
		how = `secretKey = "${HOP_SECRET}" with HOP_SECRET exported (the same key as the proxy visited)`
	}
	switch n := utf8.RuneCountInString(secret); {
	case n == 0:
		r.add(key, "missing or empty; it keys the authentication and encryption %s: set %s", path, how)
	case n < MinSecretKeyLen:
		r.add(key, "%d characters is too short; use at least %d, since it keys the authentication and encryption %s: set %s", n, MinSecretKeyLen, path, how)
	}
}

func onlySecret(k string, t ProxyType) string {
	return fmt.Sprintf("only stcp, sudp, xtcp and xudp proxies take %s; remove it from this %s proxy", k, t)
}

func onlyDatagramProxy(t ProxyType) string {
	return fmt.Sprintf("only udp, sudp and xudp proxies have an idle timeout; remove it from this %s proxy", t)
}

func onlyDatagramVisitor(t ProxyType) string {
	return fmt.Sprintf("only sudp and xudp visitors have an idle timeout; remove it from this %s visitor", t)
}

func onlyP2PVisitor(k string, t ProxyType) string {
	return fmt.Sprintf("only xtcp and xudp visitors take %s, since %s always goes through hops; remove it from this %s visitor", k, t, t)
}

func visitorTypeList() string {
	var s []string
	for _, t := range ProxyTypes {
		if t.IsSecret() {
			s = append(s, string(t))
		}
	}
	return strings.Join(s, ", ")
}

func proxyTypeList() string {
	s := make([]string, len(ProxyTypes))
	for i, t := range ProxyTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// normalizeSHA256 returns a fingerprint as 64 lowercase hex digits without
// colons, and whether s was a valid fingerprint.
func normalizeSHA256(s string) (string, bool) {
	n := strings.ToLower(strings.ReplaceAll(s, ":", ""))
	if len(n) != 64 {
		return "", false
	}
	for _, c := range n {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return n, true
}

// --- p2plife: keepaliveInterval = "auto" of P2P visitors (issue 12)

// AutoP2PKeepaliveStart is the keepalive interval of a P2P visitor with
// keepaliveInterval = "auto" until the UDP mapping lifetime is learnt;
// its keepaliveTimeout must be at least MinAutoP2PKeepaliveTimeout.
const (
	AutoP2PKeepaliveStart      = 2 * time.Second
	MinAutoP2PKeepaliveTimeout = 3 * AutoP2PKeepaliveStart
)

// isAuto reports whether a raw duration value is "auto".
func isAuto(v *rawText) bool { return v != nil && string(*v) == "auto" }

// checkAutoP2PKeepalive checks the keepaliveTimeout (key to) of a visitor
// whose keepaliveInterval is "auto".
func checkAutoP2PKeepalive(r *reporter, to string, timeout Duration) {
	if r.ok(to) && timeout.Duration < MinAutoP2PKeepaliveTimeout {
		r.add(to, `%s is too short for keepaliveInterval = "auto", which starts at %s until it has learnt the NAT's UDP timeout and then uses at most half the timeout; set keepaliveTimeout to at least %q`,
			formatDuration(timeout.Duration), formatDuration(AutoP2PKeepaliveStart), formatDuration(MinAutoP2PKeepaliveTimeout))
	}
}

// --- end p2plife
