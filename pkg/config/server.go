package config

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ServerConfig is the configuration of hops. Build one with DefaultServer
// (then call Validate) or load it with LoadServer / ParseServer (already
// validated).
type ServerConfig struct {
	// BindAddr is the address hopc clients connect to. Default "0.0.0.0".
	BindAddr string `toml:"bindAddr"`
	// BindPort is the port hopc clients connect to, 1..65535. Default 7000.
	BindPort int `toml:"bindPort"`
	// ProxyBindAddr is the address public proxy ports listen on.
	// Default "0.0.0.0".
	ProxyBindAddr string `toml:"proxyBindAddr"`
	// Auth holds the shared token and the users with tokens of their own.
	// A token, or at least one user, is required.
	Auth AuthConfig `toml:"auth"`
	// AllowPorts lists the remote ports clients may use; empty allows the
	// unprivileged ports, 1024-65535 (a port below 1024 only when
	// listed). See PortAllowed.
	AllowPorts []PortRange `toml:"allowPorts,omitempty"`
	// MaxProxiesPerClient caps the proxies of one client, >= 1 (there is
	// no "unlimited"). Default 64.
	MaxProxiesPerClient int `toml:"maxProxiesPerClient"`
	// GracePeriod is how long shutdown waits for connections to drain.
	// Default 5s.
	GracePeriod Duration `toml:"gracePeriod"`

	Transport ServerTransportConfig `toml:"transport"`
	Heartbeat HeartbeatConfig       `toml:"heartbeat"`
	Mux       MuxConfig             `toml:"mux"`
	Log       LogConfig             `toml:"log"`
	P2P       P2PConfig             `toml:"p2p"`
	WebServer WebServerConfig       `toml:"webServer"`
	Limits    ServerLimits          `toml:"limits"`
	// EnablePrometheus serves GET /metrics (Prometheus text format) on
	// the web server; it needs webServer.port. Default false.
	EnablePrometheus bool `toml:"enablePrometheus"`

	// --- vhost: HTTP and HTTPS virtual hosts (http and https proxies).
	// VhostHTTPPort is the port of the http proxies, routed by Host; 0
	// (the default) turns them off. It may be BindPort (see
	// TCPMuxHTTPConnectPort for how a port is shared).
	VhostHTTPPort int `toml:"vhostHTTPPort"`
	// VhostHTTPSPort is the port of the https proxies, routed by the TLS
	// SNI without terminating TLS; 0 (the default) turns them off. Not
	// VhostHTTPPort, unless both are BindPort.
	VhostHTTPSPort int `toml:"vhostHTTPSPort"`
	// SubDomainHost is the domain under which proxies with a subdomain
	// are served (subdomain "app" is app.<SubDomainHost>); empty (the
	// default) refuses subdomains.
	SubDomainHost string `toml:"subDomainHost"`
	// VhostHTTPTimeout bounds the wait for the response headers of an
	// http proxy's local service. Default 60s.
	VhostHTTPTimeout Duration `toml:"vhostHTTPTimeout"`
	// Custom404Page is an HTML file answered, with status 404, to a
	// request for a host no proxy serves; empty uses a short built-in
	// page.
	Custom404Page string `toml:"custom404Page"`

	// --- tcpmux: HTTP CONNECT multiplexing (tcpmux proxies, see proxy_tcpmux.go)
	// TCPMuxHTTPConnectPort is the port of the tcpmux proxies
	// (multiplexer "httpconnect"), routed by the host of an HTTP CONNECT
	// request; 0 (the default) turns them off.
	//
	// Any of VhostHTTPPort, VhostHTTPSPort and TCPMuxHTTPConnectPort may
	// be BindPort: hops then listens once, on BindAddr (not
	// ProxyBindAddr), and tells the connections apart by their first
	// bytes: a TLS ClientHello whose server name an https proxy has goes
	// to the https vhost, other TLS (hopc, which offers the ALPN protocol
	// "hop" whatever its server name) to the control listener,
	// plaintext HTTP to the http vhost (CONNECT to tcpmux). Otherwise the
	// three are distinct ports.
	TCPMuxHTTPConnectPort int `toml:"tcpmuxHTTPConnectPort"`
	// TCPMuxPassthrough forwards the CONNECT request itself to the local
	// service, instead of answering it "200 Connection established" and
	// forwarding only what follows. Default false.
	TCPMuxPassthrough bool `toml:"tcpmuxPassthrough"`

	// --- scaling: several hops nodes (issue 13)
	// NodeName names this hops node: the value of the node label on every
	// Prometheus series and the nodeName of /api/serverinfo, so that the
	// series of several nodes behind one load balancer stay apart. 1-128
	// printable characters; "" (the default) is the host name and
	// bindPort, "<hostname>:<bindPort>" (see Node).
	NodeName string `toml:"nodeName,omitempty"`

	src *source // where a loaded config came from, for Warnings
}

// ServerLimits is the [limits] table: caps on what one peer, source
// address or proxy may hold at once, so that no single one can exhaust
// the server. Every count is >= 1.
type ServerLimits struct {
	// MaxHandshakes caps the connections that have not finished TLS and
	// login yet, over all sources. Default 128.
	MaxHandshakes int `toml:"maxHandshakes"`
	// MaxHandshakesPerIP caps those of one source IP address. Default 8.
	MaxHandshakesPerIP int `toml:"maxHandshakesPerIP"`
	// MaxStreamsPerSession caps the streams a client may have open or
	// pending in its session. Default 1024.
	MaxStreamsPerSession int `toml:"maxStreamsPerSession"`
	// MaxUDPFlowsPerProxy caps the UDP flows (source address and port) of
	// one udp proxy. Default 1024.
	MaxUDPFlowsPerProxy int `toml:"maxUDPFlowsPerProxy"`
	// MaxUDPFlowsPerIP caps the UDP flows of one source IP address on one
	// proxy. Default 64.
	MaxUDPFlowsPerIP int `toml:"maxUDPFlowsPerIP"`
	// UDPUnansweredTimeout closes a UDP flow that never got a reply after
	// this long, well before the proxy's idleTimeout. > 0. Default 5s.
	UDPUnansweredTimeout Duration `toml:"udpUnansweredTimeout"`
	// StunPerIPPerSecond caps the STUN requests answered per second for one
	// source IP address. Default 20.
	StunPerIPPerSecond int `toml:"stunPerIPPerSecond"`
	// MaxP2PAttemptsPerClient caps the P2P attempts (xtcp, xudp) one client
	// may have in progress. Default 32.
	MaxP2PAttemptsPerClient int `toml:"maxP2PAttemptsPerClient"`
	// MaxP2POffersPerProxy caps the visitor offers waiting for the owner of
	// one secret proxy. Default 8.
	MaxP2POffersPerProxy int `toml:"maxP2POffersPerProxy"`
}

// Defaults of ServerLimits and ClientLimits.
const (
	DefaultMaxHandshakes           = 128
	DefaultMaxHandshakesPerIP      = 8
	DefaultMaxStreamsPerSession    = 1024
	DefaultMaxUDPFlowsPerProxy     = 1024
	DefaultMaxUDPFlowsPerIP        = 64
	DefaultUDPUnansweredTimeout    = 5 * time.Second
	DefaultStunPerIPPerSecond      = 20
	DefaultMaxP2PAttemptsPerClient = 32
	DefaultMaxP2POffersPerProxy    = 8
	DefaultMaxProxiesPerClient     = 64
)

// DefaultServerLimits returns the defaults of the [limits] table of hops.
func DefaultServerLimits() ServerLimits {
	return ServerLimits{
		MaxHandshakes:           DefaultMaxHandshakes,
		MaxHandshakesPerIP:      DefaultMaxHandshakesPerIP,
		MaxStreamsPerSession:    DefaultMaxStreamsPerSession,
		MaxUDPFlowsPerProxy:     DefaultMaxUDPFlowsPerProxy,
		MaxUDPFlowsPerIP:        DefaultMaxUDPFlowsPerIP,
		UDPUnansweredTimeout:    Dur(DefaultUDPUnansweredTimeout),
		StunPerIPPerSecond:      DefaultStunPerIPPerSecond,
		MaxP2PAttemptsPerClient: DefaultMaxP2PAttemptsPerClient,
		MaxP2POffersPerProxy:    DefaultMaxP2POffersPerProxy,
	}
}

// source is where a loaded config came from: the file name and the index
// of its keys, so that Warnings can give lines.
type source struct {
	file string
	ix   *index
	// convWarnings are the warnings about the file that only decoding
	// can see (keys it drops, such as localPort next to a plugin);
	// Warnings adds them to those of validate.
	convWarnings []problem
}

// P2PConfig is the [p2p] table: how hops helps two hopc reach each other
// directly (xtcp, xudp). hops answers STUN Binding requests on UDP
// bindAddr:bindPort, and on the alternate port and address below, which
// let hopc tell how its NAT maps and filters.
type P2PConfig struct {
	// StunAltPort is a second UDP port answering STUN, for the RFC 5780
	// mapping tests; 0 for none. 1..65535 otherwise, and not BindPort.
	// Default 7001.
	StunAltPort int `toml:"stunAltPort"`
	// StunAltAddr is a second IP address of this host answering STUN on
	// StunAltPort, for the RFC 5780 filtering tests; "" (the default) for
	// none. An IP literal of the same family as BindAddr, which must then
	// be a concrete IP address (not 0.0.0.0 or ::), so that replies can
	// come from a chosen address.
	StunAltAddr string `toml:"stunAltAddr"`
	// TallyInterval is how often the table of P2P outcomes per pair of
	// NAT types is logged; 0 never logs it. Default 10m.
	TallyInterval Duration `toml:"tallyInterval"`
}

// WebServerConfig is the [webServer] table of either side (the name and
// keys come from frp): the HTTP API of hops, the admin API of hopc. The
// APIs show client addresses and (on hopc) stop and reload the client, so
// a non-loopback Addr requires a password.
type WebServerConfig struct {
	// Addr is the address the API listens on. Default "127.0.0.1". Any
	// other than a loopback address (127.0.0.0/8, ::1) or "localhost"
	// requires User and Password.
	Addr string `toml:"addr"`
	// Port is the TCP port of the API, 1..65535 (and not BindPort on
	// hops); 0 (the default) turns the API off.
	Port int `toml:"port"`
	// User and Password, both or neither, turn on HTTP basic auth for
	// every path. Default "": the API is open (on loopback only).
	User     string `toml:"user"`
	Password string `toml:"password"`
	// TLS, when both files are set, serves the API over HTTPS.
	TLS ServerTLSConfig `toml:"tls"`
}

// PortRange is one allowPorts entry: Start..End inclusive. In TOML it is
// { start = 2000, end = 3000 } or { single = 3001 } (Start == End).
type PortRange struct {
	Start int `toml:"start"`
	End   int `toml:"end"`
}

// ServerTransportConfig is the server's [transport] table.
type ServerTransportConfig struct {
	TLS ServerTLSConfig `toml:"tls"`
	// HandshakeTimeout bounds the TLS and login handshake of a new client
	// connection. Default 10s.
	HandshakeTimeout Duration           `toml:"handshakeTimeout"`
	TCPKeepalive     TCPKeepaliveConfig `toml:"tcpKeepalive"`
}

// ServerTLSConfig is the server's [transport.tls] table. Both files or
// neither: with neither the server generates a self-signed certificate.
type ServerTLSConfig struct {
	CertFile string `toml:"certFile"` // PEM certificate chain
	KeyFile  string `toml:"keyFile"`  // PEM private key
}

// DefaultServer returns the server defaults. Auth.Token is empty, so the
// result does not pass Validate until a token (or a user) is set.
func DefaultServer() ServerConfig {
	return ServerConfig{
		BindAddr:            "0.0.0.0",
		BindPort:            7000,
		ProxyBindAddr:       "0.0.0.0",
		MaxProxiesPerClient: DefaultMaxProxiesPerClient,
		GracePeriod:         Dur(5 * time.Second),
		Transport: ServerTransportConfig{
			HandshakeTimeout: Dur(10 * time.Second),
			TCPKeepalive:     defaultTCPKeepalive(),
		},
		Heartbeat: HeartbeatConfig{Interval: Dur(10 * time.Second), Timeout: Dur(30 * time.Second), MaxInterval: Dur(DefaultHeartbeatMaxInterval)},
		Mux:       defaultMux(),
		Log:       defaultLog(),
		P2P: P2PConfig{
			StunAltPort:   7001,
			TallyInterval: Dur(10 * time.Minute),
		},
		WebServer: WebServerConfig{Addr: "127.0.0.1"},
		Limits:    DefaultServerLimits(),

		VhostHTTPTimeout: Dur(DefaultVhostHTTPTimeout),
	}
}

// BindAddress returns BindAddr:BindPort, ready for net.Listen.
func (c *ServerConfig) BindAddress() string {
	return net.JoinHostPort(c.BindAddr, strconv.Itoa(c.BindPort))
}

// WebServerAddress returns WebServer.Addr:WebServer.Port, ready for
// net.Listen, or "" when the web API is off (Port 0).
func (c *ServerConfig) WebServerAddress() string {
	if c.WebServer.Port == 0 {
		return ""
	}
	return net.JoinHostPort(c.WebServer.Addr, strconv.Itoa(c.WebServer.Port))
}

// Unprivileged ports: the remote ports allowed when AllowPorts is empty.
const (
	MinUnprivilegedPort = 1024
	MaxPort             = 65535
)

// PortAllowed reports whether clients may use port as a remote port: it is
// inside one of the ranges of AllowPorts or, when AllowPorts is empty, in
// 1024..65535 (so that a client cannot take a privileged port such as 22
// or 443 unless the operator lists it).
func (c *ServerConfig) PortAllowed(port int) bool {
	if port < 1 || port > MaxPort {
		return false
	}
	if len(c.AllowPorts) == 0 {
		return port >= MinUnprivilegedPort
	}
	for _, pr := range c.AllowPorts {
		if port >= pr.Start && port <= pr.End {
			return true
		}
	}
	return false
}

// Validate checks a config built in code. The returned error is an *Error
// naming each offending key; it matches ErrInvalid.
func (c *ServerConfig) Validate() error {
	r := newReporter("", nil)
	c.validate(r)
	return r.err()
}

// Warnings returns remarks about c that do not make it invalid (a short
// token, for example), one line each, formatted like the problems of an
// *Error: with file and line for a config from LoadServer or ParseServer.
// nil when there are none.
func (c *ServerConfig) Warnings() []string {
	r := newReporter("", nil)
	if c.src != nil {
		r = newReporter(c.src.file, c.src.ix)
	}
	c.validate(r)
	return r.warningLines()
}

func (c *ServerConfig) validate(r *reporter) {
	checkHost(r, "bindAddr", c.BindAddr, "bindPort")
	portRange(r, "bindPort", c.BindPort, 1, "")
	checkHost(r, "proxyBindAddr", c.ProxyBindAddr, "each proxy's remotePort")
	c.validateAuth(r)
	for i, pr := range c.AllowPorts {
		key := "allowPorts[" + strconv.Itoa(i) + "]"
		switch {
		case pr.Start < 1 || pr.Start > 65535:
			r.add(key+".start", "%d is out of range; use 1-65535", pr.Start)
		case pr.End < 1 || pr.End > 65535:
			r.add(key+".end", "%d is out of range; use 1-65535", pr.End)
		case pr.Start > pr.End:
			r.add(key, "start %d is greater than end %d; swap them", pr.Start, pr.End)
		}
	}
	if c.MaxProxiesPerClient < 1 {
		r.add("maxProxiesPerClient", "%d is not allowed; set the most proxies one client may register, 1 or more (default %d); there is no \"unlimited\"", c.MaxProxiesPerClient, DefaultMaxProxiesPerClient)
	}
	nonNegative(r, "gracePeriod", c.GracePeriod, `"0s" closes connections at once on shutdown`)

	tls := c.Transport.TLS
	checkCertKeyPair(r, "transport.tls", tls.CertFile, tls.KeyFile, "to use your own certificate", "to use a generated self-signed one")
	positive(r, "transport.handshakeTimeout", c.Transport.HandshakeTimeout, "")
	c.Transport.TCPKeepalive.validate(r, "transport.tcpKeepalive")
	c.Heartbeat.validate(r, "heartbeat", true)
	c.Mux.validate(r, "mux")
	c.Log.validate(r, "log")
	c.validateP2P(r)
	c.validateWebServer(r)
	checkPrometheus(r, c.EnablePrometheus, c.WebServer.Port)
	c.validateLimits(r)
	c.validateVhost(r)
	c.validateNodeName(r) // --- scaling
}

func (c *ServerConfig) validateAuth(r *reporter) {
	a := c.Auth
	if a.Token == "" && len(a.Users) == 0 {
		r.add("auth.token", `missing or empty; set the secret shared by server and clients, e.g. auth.token = "${HOP_TOKEN}" with HOP_TOKEN exported (or give each user a token of its own in [[auth.users]])`)
	} else if a.Token != "" {
		checkToken(r, "auth.token", a.Token)
	}
	names := make(map[string]string) // name → key of the entry that has it
	for i, u := range a.Users {
		key := "auth.users[" + strconv.Itoa(i) + "]"
		switch prev, dup := names[u.Name]; {
		case !nameRE.MatchString(u.Name):
			r.add(key+".name", "%q is not a valid user name; use 1-64 of A-Z a-z 0-9 . _ - (the user key of that hopc)", u.Name)
		case dup:
			r.add(key+".name", "%q is already the name of %s%s; user names must be unique", u.Name, prev, r.at(prev))
		default:
			names[u.Name] = key
		}
		if u.Token == "" {
			r.add(key+".token", `missing or empty; set the secret of user %q, e.g. token = "${HOP_TOKEN_%s}" with that variable exported`, u.Name, envSuffix(u.Name))
		} else {
			checkToken(r, key+".token", u.Token)
		}
	}
}

// envSuffix turns a user name into the tail of an environment variable
// name for examples: "ci.bot-1" → "CI_BOT_1".
func envSuffix(name string) string {
	b := []byte(strings.ToUpper(name))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "USER"
	}
	return string(b)
}

func (c *ServerConfig) validateLimits(r *reporter) {
	l := c.Limits
	for _, f := range []struct {
		name   string
		v, def int
		what   string
	}{
		{"maxHandshakes", l.MaxHandshakes, DefaultMaxHandshakes, "connections still in TLS and login, over all sources"},
		{"maxHandshakesPerIP", l.MaxHandshakesPerIP, DefaultMaxHandshakesPerIP, "connections still in TLS and login from one IP address"},
		{"maxStreamsPerSession", l.MaxStreamsPerSession, DefaultMaxStreamsPerSession, "streams a client may have open or pending"},
		{"maxUDPFlowsPerProxy", l.MaxUDPFlowsPerProxy, DefaultMaxUDPFlowsPerProxy, "UDP flows of one udp proxy"},
		{"maxUDPFlowsPerIP", l.MaxUDPFlowsPerIP, DefaultMaxUDPFlowsPerIP, "UDP flows of one source IP address on one proxy"},
		{"stunPerIPPerSecond", l.StunPerIPPerSecond, DefaultStunPerIPPerSecond, "STUN requests answered per second for one IP address"},
		{"maxP2PAttemptsPerClient", l.MaxP2PAttemptsPerClient, DefaultMaxP2PAttemptsPerClient, "P2P attempts one client may have in progress"},
		{"maxP2POffersPerProxy", l.MaxP2POffersPerProxy, DefaultMaxP2POffersPerProxy, "visitor offers waiting for the owner of one secret proxy"},
	} {
		atLeastOne(r, "limits."+f.name, f.v, f.def, f.what)
	}
	positive(r, "limits.udpUnansweredTimeout", l.UDPUnansweredTimeout, "a UDP flow that never got a reply closes after this")
}

func (c *ServerConfig) validateP2P(r *reporter) {
	p := c.P2P
	const port, addr = "p2p.stunAltPort", "p2p.stunAltAddr"
	switch {
	case p.StunAltPort < 0 || p.StunAltPort > 65535:
		r.add(port, "%d is out of range; use 1-65535, or 0 for no alternate STUN port", p.StunAltPort)
	case p.StunAltPort != 0 && p.StunAltPort == c.BindPort && r.ok("bindPort"):
		const msg = "%d%s is also bindPort, where hops already answers STUN; the alternate port must differ: set p2p.stunAltPort to another port, or 0 for none"
		if r.ix == nil || r.ix.has(port) {
			r.add(port, msg, p.StunAltPort, "")
			break
		}
		// The default clashes with the bindPort written: point there.
		line, off := r.ix.pos("bindPort")
		r.addAt(line, off, port, fmt.Sprintf(msg, p.StunAltPort, " (the default)"))
		r.suppress(port)
	}
	if p.StunAltAddr != "" {
		ip, bind := net.ParseIP(p.StunAltAddr), net.ParseIP(c.BindAddr)
		const why = "the filtering tests (RFC 5780) tell the two addresses apart by which one answers, and a socket bound to every address cannot choose"
		switch {
		case ip == nil:
			r.add(addr, `%q is not an IP address; write a second IP address of this host, e.g. "203.0.113.2" (host names are not accepted here), or "" for none`, p.StunAltAddr)
		case ip.IsUnspecified():
			r.add(addr, `%q is not a concrete address; write a second IP address of this host, e.g. "203.0.113.2", or "" for none`, p.StunAltAddr)
		case p.StunAltPort == 0 && r.ok(port):
			r.add(addr, "set, but p2p.stunAltPort is 0; hops answers on the alternate address from the alternate port: set p2p.stunAltPort (e.g. 7001), or remove stunAltAddr")
		case !r.ok("bindAddr"):
		case bind == nil:
			r.add(addr, `needs bindAddr to be an IP address of this host, not the host name %q: %s; set bindAddr to the primary address, e.g. "203.0.113.1"`, c.BindAddr, why)
		case bind.IsUnspecified():
			r.add(addr, `needs bindAddr to be a concrete IP address of this host, not %q: %s; set bindAddr to the primary address, e.g. "203.0.113.1"`, c.BindAddr, why)
		case (ip.To4() == nil) != (bind.To4() == nil):
			r.add(addr, "%q and bindAddr %q are of different IP families; use a second address of the same family as bindAddr", p.StunAltAddr, c.BindAddr)
		case ip.Equal(bind):
			r.add(addr, "%q is bindAddr; use a second, different IP address of this host", p.StunAltAddr)
		}
	}
	nonNegative(r, "p2p.tallyInterval", p.TallyInterval, `"0s" never logs the table`)
}

// isLoopback reports whether host is "localhost" or an IP address in
// 127.0.0.0/8 or ::1.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *ServerConfig) validateWebServer(r *reporter) {
	c.WebServer.validate(r, c.BindPort, r.ok("bindPort"))
}

// validate checks a [webServer] table; bindPort, when checkBind, is the
// port the API must not share (hops' bindPort).
func (w WebServerConfig) validate(r *reporter, bindPort int, checkBind bool) {
	checkHost(r, "webServer.addr", w.Addr, "webServer.port")
	switch {
	case w.User != "" && w.Password == "":
		r.add("webServer.user", "set without webServer.password; set both to require a login, or neither for an open API on loopback")
	case w.User == "" && w.Password != "":
		r.add("webServer.password", "set without webServer.user; set both to require a login, or neither for an open API on loopback")
	case r.ok("webServer.addr") && !isLoopback(w.Addr) && w.Password == "":
		r.add("webServer.addr", "%q is not a loopback address, and the web API has no login: anyone who reaches it could read client addresses (and on hopc stop or reload it); set webServer.user and webServer.password (and, across networks, webServer.tls.certFile and keyFile), or listen on loopback (127.0.0.1, ::1 or localhost)", w.Addr)
	}
	checkCertKeyPair(r, "webServer.tls", w.TLS.CertFile, w.TLS.KeyFile, "to serve the API over HTTPS", "for plain HTTP")
	switch {
	case w.Port < 0 || w.Port > 65535:
		r.add("webServer.port", "%d is out of range; use 1-65535, or 0 to turn the web API off", w.Port)
	case checkBind && w.Port != 0 && w.Port == bindPort:
		r.add("webServer.port", "%d is also bindPort, where hopc clients connect; use another port, e.g. 7500, or 0 to turn the web API off", w.Port)
	}
}

// checkCertKeyPair checks the certFile and keyFile keys of the table at
// prefix: one without the other is an error saying what setting both
// (both) or neither (neither) does, and set files must be readable.
func checkCertKeyPair(r *reporter, prefix, cert, key, both, neither string) {
	certKey, keyKey := prefix+".certFile", prefix+".keyFile"
	switch {
	case cert != "" && key == "":
		r.add(certKey, "set without %s; set both %s, or neither %s", keyKey, both, neither)
	case cert == "" && key != "":
		r.add(keyKey, "set without %s; set both %s, or neither %s", certKey, both, neither)
	case cert != "":
		checkReadable(r, certKey, cert, "certificate file")
		checkReadable(r, keyKey, key, "key file")
	}
}

// --- scaling

// MaxNodeName is the longest nodeName, in characters.
const MaxNodeName = 128

// Node returns the node's name: NodeName, or when it is empty the host
// name and bindPort, "<hostname>:<bindPort>". It fails only when the host
// name is needed and cannot be read or is not a valid node name.
func (c *ServerConfig) Node() (string, error) {
	if c.NodeName != "" {
		return c.NodeName, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("nodeName is not set and the host name cannot be read (%w); set nodeName", err)
	}
	name := h + ":" + strconv.Itoa(c.BindPort)
	if msg := nodeNameProblem(name); msg != "" {
		return "", fmt.Errorf("nodeName is not set and the default from the host name, %q, %s; set nodeName", name, msg)
	}
	return name, nil
}

func (c *ServerConfig) validateNodeName(r *reporter) {
	if c.NodeName == "" { // the default, see Node; an explicit "" is refused by conv
		return
	}
	if msg := nodeNameProblem(c.NodeName); msg != "" {
		r.add("nodeName", "%q %s; use 1-%d printable characters, e.g. nodeName = \"hops-1\" (remove the key for the default <hostname>:<bindPort>)", c.NodeName, msg, MaxNodeName)
	}
}

// nodeNameProblem says what is wrong with a node name, or "".
func nodeNameProblem(name string) string {
	switch n := utf8.RuneCountInString(name); {
	case !utf8.ValidString(name):
		return "is not valid UTF-8"
	case n == 0:
		return "is empty"
	case n > MaxNodeName:
		return fmt.Sprintf("is %d characters long, more than %d", n, MaxNodeName)
	}
	for _, ch := range name {
		if !unicode.IsPrint(ch) {
			return fmt.Sprintf("has the unprintable character %U", ch)
		}
	}
	return ""
}

// --- end scaling
