package config

import (
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ClientConfig is the configuration of hopc. Build one with DefaultClient
// (then call Validate) or load it with LoadClient / ParseClient (already
// validated).
type ClientConfig struct {
	// ServerAddr is the host name or IP of hops. Default "127.0.0.1".
	ServerAddr string `toml:"serverAddr"`
	// ServerPort is the bindPort of hops, 1..65535. Default 7000.
	ServerPort int `toml:"serverPort"`
	// ClientID identifies this client to the server, [A-Za-z0-9._-]{1,64}.
	// Empty (the default) means the program picks one per process.
	ClientID string `toml:"clientID"`
	// Auth holds the shared token. Required.
	Auth AuthConfig `toml:"auth"`
	// GracePeriod is how long shutdown waits for connections to drain.
	// Default 5s.
	GracePeriod Duration `toml:"gracePeriod"`

	Transport ClientTransportConfig `toml:"transport"`
	Reconnect ReconnectConfig       `toml:"reconnect"`
	Heartbeat HeartbeatConfig       `toml:"heartbeat"`
	Mux       MuxConfig             `toml:"mux"`
	Log       LogConfig             `toml:"log"`

	// Proxies are the [[proxies]] entries, in file order.
	Proxies []ProxyConfig `toml:"proxies,omitempty"`
}

// ClientTransportConfig is the client's [transport] table.
type ClientTransportConfig struct {
	TLS ClientTLSConfig `toml:"tls"`
	// DialTimeout bounds the TCP connect to the server. Default 10s.
	DialTimeout Duration `toml:"dialTimeout"`
	// HandshakeTimeout bounds the TLS and login handshake. Default 10s.
	HandshakeTimeout Duration           `toml:"handshakeTimeout"`
	TCPKeepalive     TCPKeepaliveConfig `toml:"tcpKeepalive"`
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

// ProxyType is the kind of traffic a proxy forwards.
type ProxyType string

// Proxy types accepted in [[proxies]].
const (
	ProxyTCP ProxyType = "tcp"
	ProxyUDP ProxyType = "udp"
)

// ProxyTypes lists the accepted proxy types.
var ProxyTypes = []ProxyType{ProxyTCP, ProxyUDP}

// DefaultUDPIdleTimeout is the default ProxyConfig.IdleTimeout of udp proxies.
const DefaultUDPIdleTimeout = 60 * time.Second

// ProxyConfig is one [[proxies]] entry: a public port on the server that
// forwards to a local service.
type ProxyConfig struct {
	// Name identifies the proxy, [A-Za-z0-9._-]{1,64}, unique per client.
	Name string `toml:"name"`
	// Type is ProxyTCP or ProxyUDP.
	Type ProxyType `toml:"type"`
	// LocalIP is the address of the local service. Default "127.0.0.1".
	LocalIP string `toml:"localIP"`
	// LocalPort is the port of the local service, 1..65535.
	LocalPort int `toml:"localPort"`
	// RemotePort is the public port on the server, 0..65535; 0 lets the
	// server choose.
	RemotePort int `toml:"remotePort"`
	// IdleTimeout (udp only) forgets a UDP peer after this long without
	// traffic. Default DefaultUDPIdleTimeout for udp, must be 0 for tcp.
	IdleTimeout Duration `toml:"idleTimeout,omitzero"`
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
	}
}

// DefaultProxy returns a proxy of type t with the defaults of the keys a
// file may leave out (LocalIP, and IdleTimeout for udp). Name, LocalPort
// and RemotePort are left for the caller.
func DefaultProxy(t ProxyType) ProxyConfig {
	p := ProxyConfig{Type: t, LocalIP: "127.0.0.1"}
	if t == ProxyUDP {
		p.IdleTimeout = Dur(DefaultUDPIdleTimeout)
	}
	return p
}

// ServerAddress returns ServerAddr:ServerPort, ready for net.Dial.
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

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func (c *ClientConfig) validate(r *reporter) {
	checkHost(r, "serverAddr", c.ServerAddr, "serverPort")
	portRange(r, "serverPort", c.ServerPort, 1, "")
	if c.ClientID != "" && !nameRE.MatchString(c.ClientID) {
		r.add("clientID", "%q is not a valid client ID; use 1-64 of A-Z a-z 0-9 . _ - (or leave it empty to get one per process)", c.ClientID)
	}
	c.Auth.validate(r, "auth")
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
	c.Transport.TCPKeepalive.validate(r, "transport.tcpKeepalive")

	rc := c.Reconnect
	positive(r, "reconnect.minDelay", rc.MinDelay, "")
	positive(r, "reconnect.maxDelay", rc.MaxDelay, "")
	if r.ok("reconnect.minDelay", "reconnect.maxDelay") && rc.MaxDelay.Duration < rc.MinDelay.Duration {
		r.add("reconnect.maxDelay", "%s is shorter than reconnect.minDelay (%s); raise maxDelay or lower minDelay",
			formatDuration(rc.MaxDelay.Duration), formatDuration(rc.MinDelay.Duration))
	}
	positive(r, "reconnect.stableAfter", rc.StableAfter, "uptime after which the backoff resets")

	c.Heartbeat.validate(r, "heartbeat")
	c.Mux.validate(r, "mux")
	c.Log.validate(r, "log")

	names := make(map[string]string)  // name → key of the proxy that has it
	remote := make(map[string]string) // "type/port" → key of the proxy that has it
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
		if p.RemotePort > 0 && r.ok(key+".remotePort", key+".type") {
			k := string(p.Type) + "/" + strconv.Itoa(p.RemotePort)
			if prev, dup := remote[k]; dup {
				r.add(key+".remotePort", "%s port %d is already used by %s%s; use another port, or 0 to let the server choose", p.Type, p.RemotePort, prev, r.at(prev))
			} else {
				remote[k] = key
			}
		}
	}
}

func (p ProxyConfig) validate(r *reporter, key string) {
	if !nameRE.MatchString(p.Name) {
		r.add(key+".name", "%q is not a valid proxy name; use 1-64 of A-Z a-z 0-9 . _ -", p.Name)
	}
	if !slices.Contains(ProxyTypes, p.Type) {
		r.add(key+".type", "%q is not a proxy type; use one of: %s", p.Type, proxyTypeList())
	}
	checkHost(r, key+".localIP", p.LocalIP, "localPort")
	portRange(r, key+".localPort", p.LocalPort, 1, " (the port of the local service)")
	portRange(r, key+".remotePort", p.RemotePort, 0, " (0 lets the server choose)")
	switch p.Type {
	case ProxyUDP:
		positive(r, key+".idleTimeout", p.IdleTimeout, "how long a UDP peer may stay silent")
	case ProxyTCP:
		if p.IdleTimeout.Duration != 0 {
			r.add(key+".idleTimeout", "only udp proxies have an idle timeout; remove it from this %s proxy", p.Type)
		}
	}
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
