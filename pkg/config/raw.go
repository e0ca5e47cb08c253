package config

import (
	"fmt"
	"math"
	"strconv"

	"github.com/pelletier/go-toml/v2/unstable"
)

// The raw shapes mirror the TOML documents. Every leaf is a pointer so that
// an absent key (nil) can be told from an explicit zero. Durations are
// rawText so that a bare number does not abort decoding: it is reported,
// with every other problem, when converting to the validated shape.
//
// Adding a proxy type: add its constant to ProxyTypes, its own keys to
// rawProxy and ProxyConfig, and a case in (*conv).proxy and
// ProxyConfig.validate that accepts them for that type only.

// rawText captures the text of any TOML scalar (string, integer, float,
// boolean). The kind written is known from the index.
type rawText string

func (t *rawText) UnmarshalText(b []byte) error {
	*t = rawText(b)
	return nil
}

type rawLog struct {
	Level *string `toml:"level"`
	To    *string `toml:"to"`
}

type rawHeartbeat struct {
	Interval *rawText `toml:"interval"`
	Timeout  *rawText `toml:"timeout"`
}

type rawMux struct {
	KeepaliveInterval *rawText `toml:"keepaliveInterval"`
	KeepaliveTimeout  *rawText `toml:"keepaliveTimeout"`
	MaxStreamWindow   *int64   `toml:"maxStreamWindow"`
}

type rawTCPKeepalive struct {
	Idle     *rawText `toml:"idle"`
	Interval *rawText `toml:"interval"`
	Count    *int64   `toml:"count"`
}

type rawAuth struct {
	Token *string `toml:"token"`
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

type rawServer struct {
	BindAddr            *string            `toml:"bindAddr"`
	BindPort            *int64             `toml:"bindPort"`
	ProxyBindAddr       *string            `toml:"proxyBindAddr"`
	Auth                rawAuth            `toml:"auth"`
	AllowPorts          []rawPortRange     `toml:"allowPorts"`
	MaxProxiesPerClient *int64             `toml:"maxProxiesPerClient"`
	GracePeriod         *rawText           `toml:"gracePeriod"`
	Transport           rawServerTransport `toml:"transport"`
	Heartbeat           rawHeartbeat       `toml:"heartbeat"`
	Mux                 rawMux             `toml:"mux"`
	Log                 rawLog             `toml:"log"`
}

type rawClientTLS struct {
	ServerName    *string `toml:"serverName"`
	TrustedCAFile *string `toml:"trustedCaFile"`
	CertSHA256    *string `toml:"certSHA256"`
}

type rawClientTransport struct {
	TLS              rawClientTLS    `toml:"tls"`
	DialTimeout      *rawText        `toml:"dialTimeout"`
	HandshakeTimeout *rawText        `toml:"handshakeTimeout"`
	TCPKeepalive     rawTCPKeepalive `toml:"tcpKeepalive"`
}

type rawReconnect struct {
	MinDelay    *rawText `toml:"minDelay"`
	MaxDelay    *rawText `toml:"maxDelay"`
	StableAfter *rawText `toml:"stableAfter"`
}

type rawProxy struct {
	Name        *string  `toml:"name"`
	Type        *string  `toml:"type"`
	LocalIP     *string  `toml:"localIP"`
	LocalPort   *int64   `toml:"localPort"`
	RemotePort  *int64   `toml:"remotePort"`
	IdleTimeout *rawText `toml:"idleTimeout"` // udp
}

type rawClient struct {
	ServerAddr  *string            `toml:"serverAddr"`
	ServerPort  *int64             `toml:"serverPort"`
	ClientID    *string            `toml:"clientID"`
	Auth        rawAuth            `toml:"auth"`
	GracePeriod *rawText           `toml:"gracePeriod"`
	Transport   rawClientTransport `toml:"transport"`
	Reconnect   rawReconnect       `toml:"reconnect"`
	Heartbeat   rawHeartbeat       `toml:"heartbeat"`
	Mux         rawMux             `toml:"mux"`
	Log         rawLog             `toml:"log"`
	Proxies     []rawProxy         `toml:"proxies"`
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
		example := "10s"
		if isNumber(s) {
			example = s + "s"
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

// array reports an array of tables written as a single [table].
func (c conv) array(key, example string) {
	if k, ok := c.r.ix.kind(key); ok && k == unstable.Table {
		c.r.add(key, "written as a table; %s must be an array: %s", key, example)
	}
}

func (c conv) log(dst *LogConfig, v rawLog) {
	c.str(&dst.Level, v.Level)
	c.str(&dst.To, v.To)
}

func (c conv) heartbeat(dst *HeartbeatConfig, key string, v rawHeartbeat) {
	c.dur(&dst.Interval, key+".interval", v.Interval)
	c.dur(&dst.Timeout, key+".timeout", v.Timeout)
}

func (c conv) mux(dst *MuxConfig, key string, v rawMux) {
	c.dur(&dst.KeepaliveInterval, key+".keepaliveInterval", v.KeepaliveInterval)
	c.dur(&dst.KeepaliveTimeout, key+".keepaliveTimeout", v.KeepaliveTimeout)
	c.int(&dst.MaxStreamWindow, key+".maxStreamWindow", v.MaxStreamWindow)
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
	c.array("allowPorts", "allowPorts = [{ start = 2000, end = 3000 }, { single = 3001 }]")
	for i, pr := range v.AllowPorts {
		cfg.AllowPorts = append(cfg.AllowPorts, c.portRange("allowPorts["+strconv.Itoa(i)+"]", pr))
	}
	c.int(&cfg.MaxProxiesPerClient, "maxProxiesPerClient", v.MaxProxiesPerClient)
	c.dur(&cfg.GracePeriod, "gracePeriod", v.GracePeriod)
	c.str(&cfg.Transport.TLS.CertFile, v.Transport.TLS.CertFile)
	c.str(&cfg.Transport.TLS.KeyFile, v.Transport.TLS.KeyFile)
	c.dur(&cfg.Transport.HandshakeTimeout, "transport.handshakeTimeout", v.Transport.HandshakeTimeout)
	c.tcpKeepalive(&cfg.Transport.TCPKeepalive, "transport.tcpKeepalive", v.Transport.TCPKeepalive)
	c.heartbeat(&cfg.Heartbeat, "heartbeat", v.Heartbeat)
	c.mux(&cfg.Mux, "mux", v.Mux)
	c.log(&cfg.Log, v.Log)
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
	c.str(&cfg.ClientID, v.ClientID)
	c.str(&cfg.Auth.Token, v.Auth.Token)
	c.dur(&cfg.GracePeriod, "gracePeriod", v.GracePeriod)

	tls := &cfg.Transport.TLS
	c.str(&tls.ServerName, v.Transport.TLS.ServerName)
	c.str(&tls.TrustedCAFile, v.Transport.TLS.TrustedCAFile)
	c.str(&tls.CertSHA256, v.Transport.TLS.CertSHA256)
	if n, ok := normalizeSHA256(tls.CertSHA256); ok {
		tls.CertSHA256 = n
	}
	c.dur(&cfg.Transport.DialTimeout, "transport.dialTimeout", v.Transport.DialTimeout)
	c.dur(&cfg.Transport.HandshakeTimeout, "transport.handshakeTimeout", v.Transport.HandshakeTimeout)
	c.tcpKeepalive(&cfg.Transport.TCPKeepalive, "transport.tcpKeepalive", v.Transport.TCPKeepalive)

	c.dur(&cfg.Reconnect.MinDelay, "reconnect.minDelay", v.Reconnect.MinDelay)
	c.dur(&cfg.Reconnect.MaxDelay, "reconnect.maxDelay", v.Reconnect.MaxDelay)
	c.dur(&cfg.Reconnect.StableAfter, "reconnect.stableAfter", v.Reconnect.StableAfter)
	c.heartbeat(&cfg.Heartbeat, "heartbeat", v.Heartbeat)
	c.mux(&cfg.Mux, "mux", v.Mux)
	c.log(&cfg.Log, v.Log)

	c.array("proxies", "write [[proxies]] (double brackets) once per proxy")
	for i, rp := range v.Proxies {
		cfg.Proxies = append(cfg.Proxies, c.proxy("proxies["+strconv.Itoa(i)+"]", rp))
	}
	return cfg
}

// proxy converts one [[proxies]] entry, applying the defaults of its type.
func (c conv) proxy(key string, v rawProxy) ProxyConfig {
	p := ProxyConfig{LocalIP: "127.0.0.1"}
	if c.required(key+".name", v.Name != nil, `every proxy needs a unique name, e.g. name = "ssh"`) {
		p.Name = *v.Name
	}
	if c.required(key+".type", v.Type != nil, fmt.Sprintf(`add type = "tcp" (one of: %s)`, proxyTypeList())) {
		p.Type = ProxyType(*v.Type)
	}
	c.str(&p.LocalIP, v.LocalIP)
	if c.required(key+".localPort", v.LocalPort != nil, "add the port of the local service, e.g. localPort = 22") {
		c.int(&p.LocalPort, key+".localPort", v.LocalPort)
	}
	if c.required(key+".remotePort", v.RemotePort != nil, "add the public port on the server, e.g. remotePort = 6000, or remotePort = 0 to let the server choose") {
		c.int(&p.RemotePort, key+".remotePort", v.RemotePort)
	}

	switch p.Type {
	case ProxyUDP:
		p.IdleTimeout = Dur(DefaultUDPIdleTimeout)
		c.dur(&p.IdleTimeout, key+".idleTimeout", v.IdleTimeout)
	case ProxyTCP:
		if v.IdleTimeout != nil {
			c.r.add(key+".idleTimeout", "only udp proxies have an idle timeout; remove it from this tcp proxy")
		}
	default:
		// The type is missing or wrong, which is reported; still check
		// the syntax of the keys that some type accepts.
		var d Duration
		c.dur(&d, key+".idleTimeout", v.IdleTimeout)
	}
	return p
}

// required reports key as missing unless present; it returns present.
func (c conv) required(key string, present bool, how string) bool {
	if !present {
		c.r.add(key, "missing; %s", how)
	}
	return present
}
