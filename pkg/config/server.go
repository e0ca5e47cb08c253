package config

import (
	"net"
	"strconv"
	"time"
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
	// Auth holds the shared token. Required.
	Auth AuthConfig `toml:"auth"`
	// AllowPorts restricts the remote ports clients may use; empty allows
	// all. See PortAllowed.
	AllowPorts []PortRange `toml:"allowPorts,omitempty"`
	// MaxProxiesPerClient caps the proxies of one client; 0 = no limit.
	// Default 0.
	MaxProxiesPerClient int `toml:"maxProxiesPerClient"`
	// GracePeriod is how long shutdown waits for connections to drain.
	// Default 5s.
	GracePeriod Duration `toml:"gracePeriod"`

	Transport ServerTransportConfig `toml:"transport"`
	Heartbeat HeartbeatConfig       `toml:"heartbeat"`
	Mux       MuxConfig             `toml:"mux"`
	Log       LogConfig             `toml:"log"`
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
// result does not pass Validate until a token is set.
func DefaultServer() ServerConfig {
	return ServerConfig{
		BindAddr:      "0.0.0.0",
		BindPort:      7000,
		ProxyBindAddr: "0.0.0.0",
		GracePeriod:   Dur(5 * time.Second),
		Transport: ServerTransportConfig{
			HandshakeTimeout: Dur(10 * time.Second),
			TCPKeepalive:     defaultTCPKeepalive(),
		},
		Heartbeat: defaultHeartbeat(),
		Mux:       defaultMux(),
		Log:       defaultLog(),
	}
}

// BindAddress returns BindAddr:BindPort, ready for net.Listen.
func (c *ServerConfig) BindAddress() string {
	return net.JoinHostPort(c.BindAddr, strconv.Itoa(c.BindPort))
}

// PortAllowed reports whether clients may use port as a remote port: it is
// in 1..65535 and, when AllowPorts is not empty, inside one of its ranges.
func (c *ServerConfig) PortAllowed(port int) bool {
	if port < 1 || port > 65535 {
		return false
	}
	if len(c.AllowPorts) == 0 {
		return true
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

func (c *ServerConfig) validate(r *reporter) {
	checkHost(r, "bindAddr", c.BindAddr, "bindPort")
	portRange(r, "bindPort", c.BindPort, 1, "")
	checkHost(r, "proxyBindAddr", c.ProxyBindAddr, "each proxy's remotePort")
	c.Auth.validate(r, "auth")
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
	if c.MaxProxiesPerClient < 0 {
		r.add("maxProxiesPerClient", "%d is negative; use 0 for no limit or a positive number", c.MaxProxiesPerClient)
	}
	nonNegative(r, "gracePeriod", c.GracePeriod, `"0s" closes connections at once on shutdown`)

	tls := c.Transport.TLS
	switch {
	case tls.CertFile != "" && tls.KeyFile == "":
		r.add("transport.tls.certFile", "set without transport.tls.keyFile; set both to use your own certificate, or neither to use a generated self-signed one")
	case tls.CertFile == "" && tls.KeyFile != "":
		r.add("transport.tls.keyFile", "set without transport.tls.certFile; set both to use your own certificate, or neither to use a generated self-signed one")
	case tls.CertFile != "":
		checkReadable(r, "transport.tls.certFile", tls.CertFile, "certificate file")
		checkReadable(r, "transport.tls.keyFile", tls.KeyFile, "key file")
	}
	positive(r, "transport.handshakeTimeout", c.Transport.HandshakeTimeout, "")
	c.Transport.TCPKeepalive.validate(r, "transport.tcpKeepalive")
	c.Heartbeat.validate(r, "heartbeat")
	c.Mux.validate(r, "mux")
	c.Log.validate(r, "log")
}
