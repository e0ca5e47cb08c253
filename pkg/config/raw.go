package config

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// The raw shapes mirror the TOML documents. Every leaf is a pointer so that
// an absent key (nil) can be told from an explicit zero. Durations are
// rawText so that a bare number does not abort decoding: it is reported,
// with every other problem, when converting to the validated shape.
//
// Adding a proxy type: add its constant to ProxyTypes (and to the
// IsSecret/IsDatagram/IsP2P methods that describe it), its own keys to
// rawProxy and ProxyConfig (and rawVisitor and VisitorConfig for a secret
// type), and cases in (conv).proxy, (conv).visitor, ProxyConfig.validate
// and VisitorConfig.validate that accept them for that type only.

// rawText captures the text of any TOML scalar (string, integer, float,
// boolean). The kind written is known from the index.
type rawText string

func (t *rawText) UnmarshalText(b []byte) error {
	*t = rawText(b)
	return nil
}

type rawLog struct {
	Level   *string `toml:"level"`
	To      *string `toml:"to"`
	MaxDays *int64  `toml:"maxDays"`
}

type rawHeartbeat struct {
	Interval    *rawText `toml:"interval"`
	Timeout     *rawText `toml:"timeout"`
	MinInterval *rawText `toml:"minInterval"`
	MaxInterval *rawText `toml:"maxInterval"`
}

// rawServerHeartbeat is hops' [heartbeat]: no minInterval, which bounds
// hopc's "auto".
type rawServerHeartbeat struct {
	Interval    *rawText `toml:"interval"`
	Timeout     *rawText `toml:"timeout"`
	MaxInterval *rawText `toml:"maxInterval"`
}

type rawMux struct {
	KeepaliveInterval  *rawText `toml:"keepaliveInterval"`
	KeepaliveTimeout   *rawText `toml:"keepaliveTimeout"`
	MaxStreamWindow    *int64   `toml:"maxStreamWindow"`
	StreamCloseTimeout *rawText `toml:"streamCloseTimeout"`
}

type rawTCPKeepalive struct {
	Idle     *rawText `toml:"idle"`
	Interval *rawText `toml:"interval"`
	Count    *int64   `toml:"count"`
}

type rawAuth struct {
	Token *string `toml:"token"`
}

type rawServerAuth struct {
	Token *string       `toml:"token"`
	Users []rawAuthUser `toml:"users"`
}

type rawAuthUser struct {
	Name  *string `toml:"name"`
	Token *string `toml:"token"`
}

type rawServerLimits struct {
	MaxHandshakes           *int64   `toml:"maxHandshakes"`
	MaxHandshakesPerIP      *int64   `toml:"maxHandshakesPerIP"`
	MaxStreamsPerSession    *int64   `toml:"maxStreamsPerSession"`
	MaxUDPFlowsPerProxy     *int64   `toml:"maxUDPFlowsPerProxy"`
	MaxUDPFlowsPerIP        *int64   `toml:"maxUDPFlowsPerIP"`
	UDPUnansweredTimeout    *rawText `toml:"udpUnansweredTimeout"`
	StunPerIPPerSecond      *int64   `toml:"stunPerIPPerSecond"`
	MaxP2PAttemptsPerClient *int64   `toml:"maxP2PAttemptsPerClient"`
	MaxP2POffersPerProxy    *int64   `toml:"maxP2POffersPerProxy"`
}

type rawClientLimits struct {
	MaxStreamsPerSession *int64 `toml:"maxStreamsPerSession"`
}

type rawPortRange struct {
	Start  *int64 `toml:"start"`
	End    *int64 `toml:"end"`
	Single *int64 `toml:"single"`
}

type rawServerTLS struct {
	CertFile *string `toml:"certFile"`
	KeyFile  *string `toml:"keyFile"`
}

type rawServerTransport struct {
	TLS              rawServerTLS    `toml:"tls"`
	HandshakeTimeout *rawText        `toml:"handshakeTimeout"`
	TCPKeepalive     rawTCPKeepalive `toml:"tcpKeepalive"`
}

type rawP2P struct {
	StunAltPort   *int64   `toml:"stunAltPort"`
	StunAltAddr   *string  `toml:"stunAltAddr"`
	TallyInterval *rawText `toml:"tallyInterval"`
}

type rawWebServer struct {
	Addr     *string      `toml:"addr"`
	Port     *int64       `toml:"port"`
	User     *string      `toml:"user"`
	Password *string      `toml:"password"`
	TLS      rawServerTLS `toml:"tls"`
}

type rawServer struct {
	BindAddr            *string            `toml:"bindAddr"`
	BindPort            *int64             `toml:"bindPort"`
	ProxyBindAddr       *string            `toml:"proxyBindAddr"`
	Auth                rawServerAuth      `toml:"auth"`
	AllowPorts          []rawPortRange     `toml:"allowPorts"`
	MaxProxiesPerClient *int64             `toml:"maxProxiesPerClient"`
	GracePeriod         *rawText           `toml:"gracePeriod"`
	Transport           rawServerTransport `toml:"transport"`
	Heartbeat           rawServerHeartbeat `toml:"heartbeat"`
	Mux                 rawMux             `toml:"mux"`
	Log                 rawLog             `toml:"log"`
	P2P                 rawP2P             `toml:"p2p"`
	WebServer           rawWebServer       `toml:"webServer"`
	Limits              rawServerLimits    `toml:"limits"`
	EnablePrometheus    *bool              `toml:"enablePrometheus"`

	// --- vhost
	VhostHTTPPort    *int64   `toml:"vhostHTTPPort"`
	VhostHTTPSPort   *int64   `toml:"vhostHTTPSPort"`
	SubDomainHost    *string  `toml:"subDomainHost"`
	VhostHTTPTimeout *rawText `toml:"vhostHTTPTimeout"`
	Custom404Page    *string  `toml:"custom404Page"`

	// --- tcpmux
	TCPMuxHTTPConnectPort *int64 `toml:"tcpmuxHTTPConnectPort"`
	TCPMuxPassthrough     *bool  `toml:"tcpmuxPassthrough"`

	// --- scaling
	NodeName *string `toml:"nodeName"`
}

type rawClientTLS struct {
	ServerName    *string `toml:"serverName"`
	TrustedCAFile *string `toml:"trustedCaFile"`
	CertSHA256    *string `toml:"certSHA256"`
}

type rawClientTransport struct {
	TLS                  rawClientTLS    `toml:"tls"`
	DialTimeout          *rawText        `toml:"dialTimeout"`
	HandshakeTimeout     *rawText        `toml:"handshakeTimeout"`
	TCPKeepalive         rawTCPKeepalive `toml:"tcpKeepalive"`
	ConnectServerLocalIP *string         `toml:"connectServerLocalIP"`
}

type rawReconnect struct {
	MinDelay    *rawText `toml:"minDelay"`
	MaxDelay    *rawText `toml:"maxDelay"`
	StableAfter *rawText `toml:"stableAfter"`
}

type rawProxy struct {
	Name        *string   `toml:"name"`
	Type        *string   `toml:"type"`
	LocalIP     *string   `toml:"localIP"`
	LocalPort   *int64    `toml:"localPort"`
	RemotePort  *int64    `toml:"remotePort"`  // tcp, udp
	IdleTimeout *rawText  `toml:"idleTimeout"` // udp, sudp, xudp
	SecretKey   *string   `toml:"secretKey"`   // stcp, sudp, xtcp, xudp
	AllowUsers  *[]string `toml:"allowUsers"`  // stcp, sudp, xtcp, xudp

	// --- plugins: [proxies.plugin]
	Plugin *rawPlugin `toml:"plugin"`
	// --- vhost: http, https
	CustomDomains     *[]string    `toml:"customDomains"`
	Subdomain         *string      `toml:"subdomain"`
	Locations         *[]string    `toml:"locations"`         // http
	HTTPUser          *string      `toml:"httpUser"`          // http
	HTTPPassword      *string      `toml:"httpPassword"`      // http
	RouteByHTTPUser   *string      `toml:"routeByHTTPUser"`   // http
	HostHeaderRewrite *string      `toml:"hostHeaderRewrite"` // http
	RequestHeaders    rawHeaderOps `toml:"requestHeaders"`    // http
	ResponseHeaders   rawHeaderOps `toml:"responseHeaders"`   // http
	// --- ppbw: PROXY protocol, bandwidth limit, groups, health checks (see proxy_ppbw.go)
	Transport    rawProxyTransport    `toml:"transport"`
	LoadBalancer rawProxyLoadBalancer `toml:"loadBalancer"`
	HealthCheck  rawProxyHealthCheck  `toml:"healthCheck"`
	// --- tcpmux
	Multiplexer *string `toml:"multiplexer"`
}

type rawVisitor struct {
	Name              *string  `toml:"name"`
	Type              *string  `toml:"type"`
	ServerName        *string  `toml:"serverName"`
	ServerUser        *string  `toml:"serverUser"`
	SecretKey         *string  `toml:"secretKey"`
	BindAddr          *string  `toml:"bindAddr"`
	BindPort          *int64   `toml:"bindPort"`
	IdleTimeout       *rawText `toml:"idleTimeout"`       // sudp, xudp
	FallbackTimeout   *rawText `toml:"fallbackTimeout"`   // xtcp, xudp
	KeepaliveInterval *rawText `toml:"keepaliveInterval"` // xtcp, xudp
	KeepaliveTimeout  *rawText `toml:"keepaliveTimeout"`  // xtcp, xudp
	RetryInterval     *rawText `toml:"retryInterval"`     // xtcp, xudp
}

type rawClientP2P struct {
	PortMapping *bool `toml:"portMapping"`
}

type rawClient struct {
	ServerAddr  *string            `toml:"serverAddr"`
	ServerPort  *int64             `toml:"serverPort"`
	ServerAddrs *[]string          `toml:"serverAddrs"` // --- nodeset
	ClientID    *string            `toml:"clientID"`
	User        *string            `toml:"user"`
	Auth        rawAuth            `toml:"auth"`
	GracePeriod *rawText           `toml:"gracePeriod"`
	Transport   rawClientTransport `toml:"transport"`
	Reconnect   rawReconnect       `toml:"reconnect"`
	Heartbeat   rawHeartbeat       `toml:"heartbeat"`
	Mux         rawMux             `toml:"mux"`
	Log         rawLog             `toml:"log"`
	Limits      rawClientLimits    `toml:"limits"`
	P2P         rawClientP2P       `toml:"p2p"`
	WebServer   rawWebServer       `toml:"webServer"`
	Proxies     []rawProxy         `toml:"proxies"`
	Visitors    []rawVisitor       `toml:"visitors"`

	EnablePrometheus *bool `toml:"enablePrometheus"`
}

// conv copies the keys present in a raw shape over defaults, reporting the
// problems that only the raw shape shows: missing keys, durations written
// as numbers, keys that do not apply.
type conv struct{ r *reporter }

func (c conv) str(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}

func (c conv) bool(dst *bool, v *bool) {
	if v != nil {
		*dst = *v
	}
}

func (c conv) int(dst *int, key string, v *int64) {
	if v == nil {
		return
	}
	if *v < math.MinInt || *v > math.MaxInt {
		c.r.add(key, "%d is out of range", *v)
		return
	}
	*dst = int(*v)
}

func (c conv) dur(dst *Duration, key string, v *rawText) {
	if v == nil {
		return
	}
	s := string(*v)
	if k, ok := c.r.ix.kind(key); ok && k != unstable.String {
		example, unit := "10s", "s"
		if msDurationKeys[lastKey(key)] {
			example, unit = "500ms", "ms" // frp counted these in milliseconds
		}
		if isNumber(s) {
			example = strings.ReplaceAll(s, "_", "") + unit
		}
		if k == unstable.Integer || k == unstable.Float {
			c.r.add(key, `%s is a bare number; durations are strings with a unit: write %q (%s)`, s, example, durationUnits)
		} else {
			c.r.add(key, `%s is not a duration; write a string with a unit, e.g. %q (%s)`, s, example, durationUnits)
		}
		return
	}
	d, err := parseDuration(s)
	if err != nil {
		c.r.add(key, "%v", err)
		return
	}
	*dst = Dur(d)
}

// array reports an array of tables written as a single [table], and
// returns false then: its entries are not converted, so that the one
// problem is not followed by others about the keys of an entry.
func (c conv) array(key, example string) bool {
	if k, ok := c.r.ix.kind(key); ok && k == unstable.Table {
		c.r.add(key, "written as a table; %s must be an array: %s", key, example)
		return false
	}
	return true
}

func (c conv) log(dst *LogConfig, v rawLog) {
	c.str(&dst.Level, v.Level)
	c.str(&dst.To, v.To)
	c.int(&dst.MaxDays, "log.maxDays", v.MaxDays)
}

func (c conv) heartbeat(dst *HeartbeatConfig, key string, v rawHeartbeat) {
	if v.Interval != nil && string(*v.Interval) == "auto" {
		dst.Interval = AutoDuration
	} else {
		c.dur(&dst.Interval, key+".interval", v.Interval)
	}
	c.dur(&dst.Timeout, key+".timeout", v.Timeout)
	c.dur(&dst.MinInterval, key+".minInterval", v.MinInterval)
	c.dur(&dst.MaxInterval, key+".maxInterval", v.MaxInterval)
}

func (c conv) mux(dst *MuxConfig, key string, v rawMux) {
	c.dur(&dst.KeepaliveInterval, key+".keepaliveInterval", v.KeepaliveInterval)
	c.dur(&dst.KeepaliveTimeout, key+".keepaliveTimeout", v.KeepaliveTimeout)
	c.int(&dst.MaxStreamWindow, key+".maxStreamWindow", v.MaxStreamWindow)
	c.dur(&dst.StreamCloseTimeout, key+".streamCloseTimeout", v.StreamCloseTimeout)
}

func (c conv) tcpKeepalive(dst *TCPKeepaliveConfig, key string, v rawTCPKeepalive) {
	c.dur(&dst.Idle, key+".idle", v.Idle)
	c.dur(&dst.Interval, key+".interval", v.Interval)
	c.int(&dst.Count, key+".count", v.Count)
}

func (c conv) server(v *rawServer) ServerConfig {
	cfg := DefaultServer()
	c.str(&cfg.BindAddr, v.BindAddr)
	c.int(&cfg.BindPort, "bindPort", v.BindPort)
	c.str(&cfg.ProxyBindAddr, v.ProxyBindAddr)
	c.str(&cfg.Auth.Token, v.Auth.Token)
	if !c.array("auth.users", `write [[auth.users]] (double brackets) once per user, with name = "..." and token = "..."`) {
		v.Auth.Users = nil
	}
	for i, u := range v.Auth.Users {
		key := "auth.users[" + strconv.Itoa(i) + "]"
		var au AuthUser
		if c.required(key+".name", u.Name != nil, `every user needs a name, the user key of its hopc, e.g. name = "laptop"`) {
			au.Name = *u.Name
		}
		if c.required(key+".token", u.Token != nil, `every user needs a token, e.g. token = "${HOP_TOKEN_LAPTOP}" with that variable exported`) {
			au.Token = *u.Token
		}
		cfg.Auth.Users = append(cfg.Auth.Users, au)
	}
	if !c.array("allowPorts", "allowPorts = [{ start = 2000, end = 3000 }, { single = 3001 }]") {
		v.AllowPorts = nil
	}
	for i, pr := range v.AllowPorts {
		cfg.AllowPorts = append(cfg.AllowPorts, c.portRange("allowPorts["+strconv.Itoa(i)+"]", pr))
	}
	c.int(&cfg.MaxProxiesPerClient, "maxProxiesPerClient", v.MaxProxiesPerClient)
	c.dur(&cfg.GracePeriod, "gracePeriod", v.GracePeriod)
	c.str(&cfg.Transport.TLS.CertFile, v.Transport.TLS.CertFile)
	c.str(&cfg.Transport.TLS.KeyFile, v.Transport.TLS.KeyFile)
	c.dur(&cfg.Transport.HandshakeTimeout, "transport.handshakeTimeout", v.Transport.HandshakeTimeout)
	c.tcpKeepalive(&cfg.Transport.TCPKeepalive, "transport.tcpKeepalive", v.Transport.TCPKeepalive)
	c.heartbeat(&cfg.Heartbeat, "heartbeat", rawHeartbeat{Interval: v.Heartbeat.Interval, Timeout: v.Heartbeat.Timeout, MaxInterval: v.Heartbeat.MaxInterval})
	c.mux(&cfg.Mux, "mux", v.Mux)
	c.log(&cfg.Log, v.Log)
	c.int(&cfg.P2P.StunAltPort, "p2p.stunAltPort", v.P2P.StunAltPort)
	c.str(&cfg.P2P.StunAltAddr, v.P2P.StunAltAddr)
	c.dur(&cfg.P2P.TallyInterval, "p2p.tallyInterval", v.P2P.TallyInterval)
	c.webServer(&cfg.WebServer, v.WebServer)
	c.bool(&cfg.EnablePrometheus, v.EnablePrometheus)
	l, rl := &cfg.Limits, v.Limits
	c.int(&l.MaxHandshakes, "limits.maxHandshakes", rl.MaxHandshakes)
	c.int(&l.MaxHandshakesPerIP, "limits.maxHandshakesPerIP", rl.MaxHandshakesPerIP)
	c.int(&l.MaxStreamsPerSession, "limits.maxStreamsPerSession", rl.MaxStreamsPerSession)
	c.int(&l.MaxUDPFlowsPerProxy, "limits.maxUDPFlowsPerProxy", rl.MaxUDPFlowsPerProxy)
	c.int(&l.MaxUDPFlowsPerIP, "limits.maxUDPFlowsPerIP", rl.MaxUDPFlowsPerIP)
	c.dur(&l.UDPUnansweredTimeout, "limits.udpUnansweredTimeout", rl.UDPUnansweredTimeout)
	c.int(&l.StunPerIPPerSecond, "limits.stunPerIPPerSecond", rl.StunPerIPPerSecond)
	c.int(&l.MaxP2PAttemptsPerClient, "limits.maxP2PAttemptsPerClient", rl.MaxP2PAttemptsPerClient)
	c.int(&l.MaxP2POffersPerProxy, "limits.maxP2POffersPerProxy", rl.MaxP2POffersPerProxy)
	// --- vhost
	c.int(&cfg.VhostHTTPPort, "vhostHTTPPort", v.VhostHTTPPort)
	c.int(&cfg.VhostHTTPSPort, "vhostHTTPSPort", v.VhostHTTPSPort)
	c.str(&cfg.SubDomainHost, v.SubDomainHost)
	c.dur(&cfg.VhostHTTPTimeout, "vhostHTTPTimeout", v.VhostHTTPTimeout)
	c.str(&cfg.Custom404Page, v.Custom404Page)
	// --- tcpmux
	c.int(&cfg.TCPMuxHTTPConnectPort, "tcpmuxHTTPConnectPort", v.TCPMuxHTTPConnectPort)
	c.bool(&cfg.TCPMuxPassthrough, v.TCPMuxPassthrough)
	// --- scaling: "" is the default of a config built in code, not a
	// value a file may write.
	if v.NodeName != nil && *v.NodeName == "" {
		c.r.add("nodeName", `is empty; use 1-%d printable characters, e.g. nodeName = "hops-1", or remove the key for the default <hostname>:<bindPort>`, MaxNodeName)
	}
	c.str(&cfg.NodeName, v.NodeName)
	return cfg
}

// portRange converts one allowPorts entry. An entry that is not exactly one
// of the two forms is reported here, and its keys are marked so that
// validate does not report it again.
func (c conv) portRange(key string, v rawPortRange) PortRange {
	const forms = "write { start = 2000, end = 3000 } or { single = 3001 }"
	bad := func(k, format string, args ...any) PortRange {
		c.r.add(k, format, args...)
		c.r.suppress(key, key+".start", key+".end")
		return PortRange{}
	}
	switch {
	case v.Single != nil && (v.Start != nil || v.End != nil):
		return bad(key, "has both single and start/end; %s, not both", forms)
	case v.Single != nil:
		if *v.Single < 1 || *v.Single > 65535 {
			return bad(key+".single", "%d is out of range; use 1-65535", *v.Single)
		}
		return PortRange{Start: int(*v.Single), End: int(*v.Single)}
	case v.Start != nil && v.End != nil:
		var pr PortRange
		c.int(&pr.Start, key+".start", v.Start)
		c.int(&pr.End, key+".end", v.End)
		return pr
	case v.Start != nil:
		return bad(key, "has start but no end; %s", forms)
	case v.End != nil:
		return bad(key, "has end but no start; %s", forms)
	default:
		return bad(key, "is empty; %s", forms)
	}
}

func (c conv) client(v *rawClient) ClientConfig {
	cfg := DefaultClient()
	c.str(&cfg.ServerAddr, v.ServerAddr)
	c.int(&cfg.ServerPort, "serverPort", v.ServerPort)
	c.serverAddrs(&cfg, v) // --- nodeset
	c.str(&cfg.ClientID, v.ClientID)
	c.str(&cfg.User, v.User)
	c.str(&cfg.Auth.Token, v.Auth.Token)
	c.dur(&cfg.GracePeriod, "gracePeriod", v.GracePeriod)
	c.bool(&cfg.EnablePrometheus, v.EnablePrometheus)

	tls := &cfg.Transport.TLS
	c.str(&tls.ServerName, v.Transport.TLS.ServerName)
	c.str(&tls.TrustedCAFile, v.Transport.TLS.TrustedCAFile)
	c.str(&tls.CertSHA256, v.Transport.TLS.CertSHA256)
	if n, ok := normalizeSHA256(tls.CertSHA256); ok {
		tls.CertSHA256 = n
	}
	c.dur(&cfg.Transport.DialTimeout, "transport.dialTimeout", v.Transport.DialTimeout)
	c.str(&cfg.Transport.ConnectServerLocalIP, v.Transport.ConnectServerLocalIP)
	c.dur(&cfg.Transport.HandshakeTimeout, "transport.handshakeTimeout", v.Transport.HandshakeTimeout)
	c.tcpKeepalive(&cfg.Transport.TCPKeepalive, "transport.tcpKeepalive", v.Transport.TCPKeepalive)

	c.dur(&cfg.Reconnect.MinDelay, "reconnect.minDelay", v.Reconnect.MinDelay)
	c.dur(&cfg.Reconnect.MaxDelay, "reconnect.maxDelay", v.Reconnect.MaxDelay)
	c.dur(&cfg.Reconnect.StableAfter, "reconnect.stableAfter", v.Reconnect.StableAfter)
	c.heartbeat(&cfg.Heartbeat, "heartbeat", v.Heartbeat)
	c.mux(&cfg.Mux, "mux", v.Mux)
	c.log(&cfg.Log, v.Log)
	c.int(&cfg.Limits.MaxStreamsPerSession, "limits.maxStreamsPerSession", v.Limits.MaxStreamsPerSession)
	if v.P2P.PortMapping != nil {
		cfg.P2P.PortMapping = *v.P2P.PortMapping
	}
	c.webServer(&cfg.WebServer, v.WebServer)

	if !c.array("proxies", "write [[proxies]] (double brackets) once per proxy") {
		v.Proxies = nil
	}
	for i, rp := range v.Proxies {
		cfg.Proxies = append(cfg.Proxies, c.proxy("proxies["+strconv.Itoa(i)+"]", rp))
	}
	if !c.array("visitors", "write [[visitors]] (double brackets) once per visitor") {
		v.Visitors = nil
	}
	for i, rv := range v.Visitors {
		cfg.Visitors = append(cfg.Visitors, c.visitor("visitors["+strconv.Itoa(i)+"]", rv))
	}
	return cfg
}

// webServer converts the [webServer] table of either side.
func (c conv) webServer(dst *WebServerConfig, v rawWebServer) {
	c.str(&dst.Addr, v.Addr)
	c.int(&dst.Port, "webServer.port", v.Port)
	c.str(&dst.User, v.User)
	c.str(&dst.Password, v.Password)
	c.str(&dst.TLS.CertFile, v.TLS.CertFile)
	c.str(&dst.TLS.KeyFile, v.TLS.KeyFile)
}

// proxy converts one [[proxies]] entry, applying the defaults of its type.
// Keys that the type does not take are reported here, where their
// presence is known: validate sees only values.
func (c conv) proxy(key string, v rawProxy) ProxyConfig {
	p := ProxyConfig{LocalIP: "127.0.0.1"}
	if c.required(key+".name", v.Name != nil, `every proxy needs a unique name, e.g. name = "ssh"`) {
		p.Name = *v.Name
	}
	if c.required(key+".type", v.Type != nil, fmt.Sprintf(`add type = "tcp" (one of: %s)`, proxyTypeList())) {
		p.Type = ProxyType(*v.Type)
	}
	known := slices.Contains(ProxyTypes, p.Type)
	c.proxyPPBW(key, &p, v) // --- ppbw
	c.str(&p.LocalIP, v.LocalIP)
	if v.Plugin != nil {
		c.plugin(&p, key, v) // --- plugins
	} else if c.required(key+".localPort", v.LocalPort != nil, "add the port of the local service, e.g. localPort = 22") {
		c.int(&p.LocalPort, key+".localPort", v.LocalPort)
	}
	// A secret proxy has no public port. remotePort = 0 is accepted there
	// (validate rejects any other value): it is how the zero RemotePort of
	// a secret proxy marshals, and marshaled configs must parse again.
	if p.Type.IsSecret() || p.Type.IsVhost() {
		c.int(&p.RemotePort, key+".remotePort", v.RemotePort)
	} else if c.required(key+".remotePort", v.RemotePort != nil, "add the public port on the server, e.g. remotePort = 6000, or remotePort = 0 to let the server choose") {
		c.int(&p.RemotePort, key+".remotePort", v.RemotePort)
	}

	switch {
	case p.Type.IsDatagram():
		p.IdleTimeout = Dur(DefaultUDPIdleTimeout)
		c.dur(&p.IdleTimeout, key+".idleTimeout", v.IdleTimeout)
	case known:
		if v.IdleTimeout != nil {
			c.r.add(key+".idleTimeout", "%s", onlyDatagramProxy(p.Type))
		}
	default:
		// The type is missing or wrong, which is reported; still check
		// the syntax of the keys that some type accepts.
		var d Duration
		c.dur(&d, key+".idleTimeout", v.IdleTimeout)
	}

	c.vhostProxy(&p, key, v)  // --- vhost
	c.tcpmuxProxy(&p, key, v) // --- tcpmux

	if known && !p.Type.IsSecret() {
		if v.SecretKey != nil {
			c.r.add(key+".secretKey", "%s", onlySecret("secretKey", p.Type))
		}
		if v.AllowUsers != nil {
			c.r.add(key+".allowUsers", "%s", onlySecret("allowUsers", p.Type))
		}
		return p
	}
	c.str(&p.SecretKey, v.SecretKey)
	if v.AllowUsers != nil && len(*v.AllowUsers) > 0 {
		p.AllowUsers = *v.AllowUsers
	}
	return p
}

// visitor converts one [[visitors]] entry, applying the defaults of its
// type. Keys that the type does not take are reported here.
func (c conv) visitor(key string, v rawVisitor) VisitorConfig {
	var t ProxyType
	if v.Type != nil {
		t = ProxyType(*v.Type)
	}
	vc := VisitorConfig{Type: t, BindAddr: "127.0.0.1"} // a wrong type is reported; it has no defaults
	if t.IsSecret() {
		vc = DefaultVisitor(t)
	}
	if c.required(key+".name", v.Name != nil, `every visitor needs a unique name, e.g. name = "ssh-visitor"`) {
		vc.Name = *v.Name
	}
	c.required(key+".type", v.Type != nil, fmt.Sprintf(`add the type of the proxy visited, e.g. type = "xtcp" (one of: %s)`, visitorTypeList()))
	if c.required(key+".serverName", v.ServerName != nil, `add the name of the proxy to visit on the other hopc, e.g. serverName = "ssh"`) {
		vc.ServerName = *v.ServerName
	}
	c.str(&vc.ServerUser, v.ServerUser)
	c.str(&vc.SecretKey, v.SecretKey)
	c.str(&vc.BindAddr, v.BindAddr)
	if c.required(key+".bindPort", v.BindPort != nil, "add the local port to listen on, e.g. bindPort = 6000") {
		c.int(&vc.BindPort, key+".bindPort", v.BindPort)
	}

	switch {
	case t.IsSecret() && t.IsDatagram():
		c.dur(&vc.IdleTimeout, key+".idleTimeout", v.IdleTimeout)
	case t.IsSecret():
		if v.IdleTimeout != nil {
			c.r.add(key+".idleTimeout", "%s", onlyDatagramVisitor(t))
		}
	default:
		var d Duration
		c.dur(&d, key+".idleTimeout", v.IdleTimeout)
	}
	p2p := []struct {
		name string
		dst  *Duration
		v    *rawText
	}{
		{"fallbackTimeout", &vc.FallbackTimeout, v.FallbackTimeout},
		{"keepaliveInterval", &vc.KeepaliveInterval, v.KeepaliveInterval},
		{"keepaliveTimeout", &vc.KeepaliveTimeout, v.KeepaliveTimeout},
		{"retryInterval", &vc.RetryInterval, v.RetryInterval},
	}
	for _, f := range p2p {
		switch {
		case t.IsP2P() && f.name == "keepaliveInterval" && isAuto(f.v):
			*f.dst = AutoDuration
		case t.IsP2P():
			c.dur(f.dst, key+"."+f.name, f.v)
		case t.IsSecret():
			if f.v != nil {
				c.r.add(key+"."+f.name, "%s", onlyP2PVisitor(f.name, t))
			}
		default:
			var d Duration
			c.dur(&d, key+"."+f.name, f.v)
		}
	}
	return vc
}

// required reports key as missing unless present; it returns present.
func (c conv) required(key string, present bool, how string) bool {
	if !present {
		c.r.add(key, "missing; %s", how)
	}
	return present
}
