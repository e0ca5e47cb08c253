package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// setCaseEnv sets the variables of c and makes sure HOP_TEST_UNSET is unset.
func setCaseEnv(t *testing.T, c errorCase) {
	t.Helper()
	t.Setenv("HOP_TEST_UNSET", "")
	os.Unsetenv("HOP_TEST_UNSET")
	for k, v := range c.env {
		t.Setenv(k, v)
	}
}

// checkErr compares err with the wanted text and checks the error's shape.
func checkErr(t *testing.T, file string, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error:\n%v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want:\n%s", want)
	}
	if got := err.Error(); got != want {
		t.Fatalf("error text:\n%s\nwant:\n%s", got, want)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false")
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error is %T, want *Error", err)
	}
	for _, p := range ce.Problems {
		if p.File != file || p.Msg == "" {
			t.Errorf("problem %+v: want File %q and a message", p, file)
		}
	}
}

func TestParseServerErrors(t *testing.T) {
	for _, c := range serverCases {
		t.Run(c.name, func(t *testing.T) {
			setCaseEnv(t, c)
			cfg, err := ParseServer("hops.toml", []byte(c.toml))
			checkErr(t, "hops.toml", err, c.want)
			if err == nil {
				if verr := cfg.Validate(); verr != nil {
					t.Errorf("parsed config fails Validate: %v", verr)
				}
			}
		})
	}
}

func TestParseClientErrors(t *testing.T) {
	for _, c := range append(clientCases, nodesetClientCases...) {
		t.Run(c.name, func(t *testing.T) {
			setCaseEnv(t, c)
			cfg, err := ParseClient("hopc.toml", []byte(c.toml))
			checkErr(t, "hopc.toml", err, c.want)
			if err == nil {
				if verr := cfg.Validate(); verr != nil {
					t.Errorf("parsed config fails Validate: %v", verr)
				}
			}
		})
	}
}

// values returns a copy of a loaded config without the record of its
// source, to compare it with one built in code.
func values[T ServerConfig | ClientConfig](c *T) T {
	v := *c
	switch x := any(&v).(type) {
	case *ServerConfig:
		x.src = nil
	case *ClientConfig:
		x.src = nil
	}
	return v
}

func d(s string) Duration {
	v, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return Dur(v)
}

func TestServerDefaults(t *testing.T) {
	cfg, err := ParseServer("hops.toml", []byte("# only the token\n[auth]\ntoken = \"t\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultServer()
	want.Auth.Token = "t"
	if !reflect.DeepEqual(values(cfg), want) {
		t.Errorf("got  %+v\nwant %+v", *cfg, want)
	}
	// The documented values, spelled out once.
	if want.BindAddr != "0.0.0.0" || want.BindPort != 7000 || want.ProxyBindAddr != "0.0.0.0" ||
		want.AllowPorts != nil || want.MaxProxiesPerClient != 64 || want.GracePeriod != d("5s") ||
		want.Transport != (ServerTransportConfig{HandshakeTimeout: d("10s"), TCPKeepalive: TCPKeepaliveConfig{d("15s"), d("5s"), 3}}) ||
		want.Heartbeat != (HeartbeatConfig{d("10s"), d("30s"), Duration{}, d("60s")}) ||
		want.Mux != (MuxConfig{d("15s"), d("10s"), 2097152, d("60s")}) ||
		want.Log != (LogConfig{Level: "info", To: "stderr"}) ||
		want.P2P != (P2PConfig{StunAltPort: 7001, StunAltAddr: "", TallyInterval: d("10m")}) ||
		want.WebServer != (WebServerConfig{Addr: "127.0.0.1", Port: 0}) ||
		want.Limits != (ServerLimits{MaxHandshakes: 128, MaxHandshakesPerIP: 8, MaxStreamsPerSession: 1024, MaxUDPFlowsPerProxy: 1024,
			MaxUDPFlowsPerIP: 64, UDPUnansweredTimeout: d("5s"), StunPerIPPerSecond: 20, MaxP2PAttemptsPerClient: 32, MaxP2POffersPerProxy: 8}) ||
		want.Auth.Users != nil {
		t.Errorf("DefaultServer() = %+v, differs from the documented defaults", want)
	}
	if a := want.WebServerAddress(); a != "" {
		t.Errorf("WebServerAddress() = %q with the web API off, want \"\"", a)
	}
	want.WebServer.Port = 7500
	if a := want.WebServerAddress(); a != "127.0.0.1:7500" {
		t.Errorf("WebServerAddress() = %q, want 127.0.0.1:7500", a)
	}
}

func TestClientDefaults(t *testing.T) {
	cfg, err := ParseClient("hopc.toml", []byte(tokenLine))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultClient()
	want.Auth.Token = "s3cret"
	if !reflect.DeepEqual(values(cfg), want) {
		t.Errorf("got  %+v\nwant %+v", *cfg, want)
	}
	if want.ServerAddr != "127.0.0.1" || want.ServerPort != 7000 || want.ClientID != "" || want.User != "" || want.GracePeriod != d("5s") ||
		want.Limits != (ClientLimits{MaxStreamsPerSession: 1024}) ||
		want.Transport != (ClientTransportConfig{DialTimeout: d("10s"), HandshakeTimeout: d("10s"), TCPKeepalive: TCPKeepaliveConfig{d("15s"), d("5s"), 3}}) ||
		want.Reconnect != (ReconnectConfig{d("1s"), d("30s"), d("60s")}) ||
		want.Heartbeat != (HeartbeatConfig{d("10s"), d("30s"), d("1s"), d("60s")}) ||
		want.Mux != (MuxConfig{d("15s"), d("10s"), 2097152, d("60s")}) ||
		want.Log != (LogConfig{Level: "info", To: "stderr"}) || want.Proxies != nil || want.Visitors != nil {
		t.Errorf("DefaultClient() = %+v, differs from the documented defaults", want)
	}
}

func TestExplicitZeroStaysZero(t *testing.T) {
	srv, err := ParseServer("hops.toml", []byte(tokenLine+`
gracePeriod = "0s"
[transport.tcpKeepalive]
idle = "0s"
interval = "0s"
count = 0
[heartbeat]
interval = "0s"
timeout = "0s"
[mux]
keepaliveInterval = "0s"
`))
	if err != nil {
		t.Fatal(err)
	}
	if srv.GracePeriod.Duration != 0 || srv.Transport.TCPKeepalive != (TCPKeepaliveConfig{}) ||
		srv.Heartbeat != (HeartbeatConfig{MaxInterval: d("60s")}) || srv.Mux.KeepaliveInterval.Duration != 0 {
		t.Errorf("explicit zeros were replaced: %+v", srv)
	}
	if srv.Mux.KeepaliveTimeout != d("10s") {
		t.Errorf("absent keepaliveTimeout = %v, want the default", srv.Mux.KeepaliveTimeout)
	}

	cli, err := ParseClient("hopc.toml", []byte(tokenLine+`
gracePeriod = "0s"
[[proxies]]
name = "a"
type = "tcp"
localPort = 1
remotePort = 0
`))
	if err != nil {
		t.Fatal(err)
	}
	if cli.GracePeriod.Duration != 0 || cli.Proxies[0].RemotePort != 0 {
		t.Errorf("explicit zeros were replaced: %+v", cli)
	}
}

func TestProxyDefaultsPerElement(t *testing.T) {
	cfg, err := ParseClient("hopc.toml", []byte(tokenLine+`
[[proxies]]
name = "a"
type = "udp"
localIP = "10.0.0.1"
localPort = 53
remotePort = 6001
idleTimeout = "5m"
[[proxies]]
name = "b"
type = "udp"
localPort = 54
remotePort = 6002
[[proxies]]
name = "c"
type = "tcp"
localPort = 22
remotePort = 6000
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []ProxyConfig{
		{Name: "a", Type: ProxyUDP, LocalIP: "10.0.0.1", LocalPort: 53, RemotePort: 6001, IdleTimeout: d("5m")},
		{Name: "b", Type: ProxyUDP, LocalIP: "127.0.0.1", LocalPort: 54, RemotePort: 6002, IdleTimeout: d("60s")},
		{Name: "c", Type: ProxyTCP, LocalIP: "127.0.0.1", LocalPort: 22, RemotePort: 6000},
	}
	if !reflect.DeepEqual(cfg.Proxies, want) {
		t.Errorf("got  %+v\nwant %+v", cfg.Proxies, want)
	}
	b := DefaultProxy(ProxyUDP)
	b.Name, b.LocalPort, b.RemotePort = "b", 54, 6002
	if !reflect.DeepEqual(b, want[1]) {
		t.Errorf("DefaultProxy(udp) = %+v, want the defaults a file gets", b)
	}
}

func TestSecretProxyDefaultsPerElement(t *testing.T) {
	t.Setenv("HOP_TEST_USER", "laptop")
	cfg, err := ParseClient("hopc.toml", []byte(tokenLine+`
[[proxies]]
name = "db"
type = "stcp"
localPort = 5432
secretKey = "0123456789"
allowUsers = ["${HOP_TEST_USER}", "*"]
[[proxies]]
name = "syslog"
type = "sudp"
localPort = 514
secretKey = "0123456789"
[[proxies]]
name = "ssh"
type = "xtcp"
localPort = 22
remotePort = 0
secretKey = "0123456789"
allowUsers = []
[[proxies]]
name = "game"
type = "xudp"
localIP = "10.0.0.2"
localPort = 27015
secretKey = "0123456789"
idleTimeout = "2m"
`))
	if err != nil {
		t.Fatal(err)
	}
	const key = "0123456789"
	want := []ProxyConfig{
		{Name: "db", Type: ProxySTCP, LocalIP: "127.0.0.1", LocalPort: 5432, SecretKey: key, AllowUsers: []string{"laptop", "*"}},
		{Name: "syslog", Type: ProxySUDP, LocalIP: "127.0.0.1", LocalPort: 514, SecretKey: key, IdleTimeout: d("60s")},
		{Name: "ssh", Type: ProxyXTCP, LocalIP: "127.0.0.1", LocalPort: 22, SecretKey: key}, // allowUsers = [] is nil
		{Name: "game", Type: ProxyXUDP, LocalIP: "10.0.0.2", LocalPort: 27015, SecretKey: key, IdleTimeout: d("2m")},
	}
	if !reflect.DeepEqual(cfg.Proxies, want) {
		t.Errorf("got  %+v\nwant %+v", cfg.Proxies, want)
	}
	for i, typ := range []ProxyType{ProxySTCP, ProxySUDP, ProxyXTCP} {
		p := DefaultProxy(typ)
		p.Name, p.LocalPort, p.SecretKey, p.AllowUsers = want[i].Name, want[i].LocalPort, key, want[i].AllowUsers
		if !reflect.DeepEqual(p, want[i]) {
			t.Errorf("DefaultProxy(%s) = %+v, want the defaults a file gets %+v", typ, p, want[i])
		}
	}
}

func TestVisitorDefaultsPerElement(t *testing.T) {
	cfg, err := ParseClient("hopc.toml", []byte(tokenLine+`
[[visitors]]
name = "db"
type = "stcp"
serverName = "db"
secretKey = "0123456789"
bindPort = 15432
[[visitors]]
name = "syslog"
type = "sudp"
serverName = "syslog"
secretKey = "0123456789"
bindAddr = "0.0.0.0"
bindPort = 514
[[visitors]]
name = "ssh"
type = "xtcp"
serverName = "ssh"
secretKey = "0123456789"
bindPort = 2222
keepaliveInterval = "5s"
[[visitors]]
name = "game"
type = "xudp"
serverName = "game"
secretKey = "0123456789"
bindPort = 27015
idleTimeout = "5m"
fallbackTimeout = "0.5s"
keepaliveTimeout = "1m"
retryInterval = "2m"
`))
	if err != nil {
		t.Fatal(err)
	}
	const key = "0123456789"
	want := []VisitorConfig{
		{Name: "db", Type: ProxySTCP, ServerName: "db", SecretKey: key, BindAddr: "127.0.0.1", BindPort: 15432},
		{Name: "syslog", Type: ProxySUDP, ServerName: "syslog", SecretKey: key, BindAddr: "0.0.0.0", BindPort: 514, IdleTimeout: d("60s")},
		{Name: "ssh", Type: ProxyXTCP, ServerName: "ssh", SecretKey: key, BindAddr: "127.0.0.1", BindPort: 2222,
			FallbackTimeout: d("1.5s"), KeepaliveInterval: d("5s"), KeepaliveTimeout: d("30s"), RetryInterval: d("30s")},
		{Name: "game", Type: ProxyXUDP, ServerName: "game", SecretKey: key, BindAddr: "127.0.0.1", BindPort: 27015, IdleTimeout: d("5m"),
			FallbackTimeout: d("500ms"), KeepaliveInterval: d("10s"), KeepaliveTimeout: d("1m"), RetryInterval: d("2m")},
	}
	if !reflect.DeepEqual(cfg.Visitors, want) {
		t.Errorf("got  %+v\nwant %+v", cfg.Visitors, want)
	}
	for _, w := range want[:2] {
		v := DefaultVisitor(w.Type)
		v.Name, v.ServerName, v.SecretKey, v.BindAddr, v.BindPort = w.Name, w.ServerName, key, w.BindAddr, w.BindPort
		if !reflect.DeepEqual(v, w) {
			t.Errorf("DefaultVisitor(%s) = %+v, want the defaults a file gets %+v", w.Type, v, w)
		}
	}
	if v := DefaultVisitor(ProxyXTCP); v.FallbackTimeout != d("1.5s") || v.KeepaliveInterval != d("10s") ||
		v.KeepaliveTimeout != d("30s") || v.RetryInterval != d("30s") || v.IdleTimeout.Duration != 0 {
		t.Errorf("DefaultVisitor(xtcp) = %+v, differs from the documented defaults", v)
	}
	if v := DefaultVisitor(ProxyXUDP); v.IdleTimeout != d("60s") || v.FallbackTimeout != d("1.5s") {
		t.Errorf("DefaultVisitor(xudp) = %+v, differs from the documented defaults", v)
	}
}

func TestProxyTypeClasses(t *testing.T) {
	for _, c := range []struct {
		t                     ProxyType
		secret, datagram, p2p bool
	}{
		{ProxyTCP, false, false, false},
		{ProxyUDP, false, true, false},
		{ProxySTCP, true, false, false},
		{ProxySUDP, true, true, false},
		{ProxyXTCP, true, false, true},
		{ProxyXUDP, true, true, true},
		{ProxyHTTP, false, false, false},
		{ProxyHTTPS, false, false, false},
		{ProxyTCPMux, false, false, false},
		{"", false, false, false},
		{"XTCP", false, false, false},
	} {
		if c.t.IsSecret() != c.secret || c.t.IsDatagram() != c.datagram || c.t.IsP2P() != c.p2p {
			t.Errorf("%q: IsSecret, IsDatagram, IsP2P = %v, %v, %v; want %v, %v, %v",
				c.t, c.t.IsSecret(), c.t.IsDatagram(), c.t.IsP2P(), c.secret, c.datagram, c.p2p)
		}
	}
	if len(ProxyTypes) != 9 || !ProxyHTTP.IsVhost() || !ProxyHTTPS.IsVhost() || !ProxyTCPMux.IsVhost() || ProxyTCP.IsVhost() {
		t.Errorf("ProxyTypes = %v", ProxyTypes)
	}
}

func TestAllowsUser(t *testing.T) {
	for _, c := range []struct {
		allow          []string
		owner, visitor string
		want           bool
	}{
		{nil, "home", "home", true},
		{nil, "home", "laptop", false},
		{nil, "", "", true},
		{nil, "", "laptop", false},
		{nil, "home", "", false},
		{[]string{"*"}, "home", "anyone", true},
		{[]string{"*"}, "home", "", true},
		{[]string{"laptop", "ci"}, "home", "ci", true},
		{[]string{"laptop", "ci"}, "home", "phone", false},
		{[]string{"laptop"}, "home", "home", false}, // as in frp: a list replaces the owner's own user
		{[]string{"laptop"}, "home", "", false},
		{[]string{"laptop"}, "home", "Laptop", false},
		{[]string{"laptop", "*"}, "home", "phone", true},
	} {
		p := ProxyConfig{AllowUsers: c.allow}
		if got := p.AllowsUser(c.owner, c.visitor); got != c.want {
			t.Errorf("AllowUsers %q of owner %q: AllowsUser(visitor %q) = %v, want %v", c.allow, c.owner, c.visitor, got, c.want)
		}
	}
}

func TestOwnerUser(t *testing.T) {
	v := VisitorConfig{}
	if got := v.OwnerUser("laptop"); got != "laptop" {
		t.Errorf("no serverUser: OwnerUser = %q, want the visitor's own user", got)
	}
	v.ServerUser = "home"
	if got := v.OwnerUser("laptop"); got != "home" {
		t.Errorf("serverUser home: OwnerUser = %q", got)
	}
}

func TestTokenFor(t *testing.T) {
	a := AuthConfig{Token: "shared", Users: []AuthUser{{"ci", "ci-token"}, {"laptop", "laptop-token"}}}
	for user, want := range map[string]string{"ci": "ci-token", "laptop": "laptop-token", "": "shared", "other": "shared", "CI": "shared"} {
		if got, ok := a.TokenFor(user); got != want || !ok {
			t.Errorf("TokenFor(%q) = %q, %v; want %q, true", user, got, ok, want)
		}
	}
	a.Token = ""
	if got, ok := a.TokenFor("ci"); got != "ci-token" || !ok {
		t.Errorf("no shared token: TokenFor(ci) = %q, %v", got, ok)
	}
	for _, user := range []string{"", "other"} {
		if got, ok := a.TokenFor(user); ok || got != "" {
			t.Errorf("no shared token: TokenFor(%q) = %q, %v; want \"\", false", user, got, ok)
		}
	}
}

func TestNonDefaultValues(t *testing.T) {
	cfg, err := ParseClient("hopc.toml", []byte(`
serverAddr = "hop.example.com"
serverPort = 443
clientID = "laptop"
auth.token = "t"
[transport.tls]
serverName = "hop.internal"
certSHA256 = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
[reconnect]
minDelay = "500ms"
maxDelay = "1m30s"
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerAddress() != "hop.example.com:443" || cfg.ClientID != "laptop" || cfg.Transport.TLS.ServerName != "hop.internal" {
		t.Errorf("got %+v", cfg)
	}
	if want := "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"; cfg.Transport.TLS.CertSHA256 != want {
		t.Errorf("CertSHA256 = %q, want %q", cfg.Transport.TLS.CertSHA256, want)
	}
	if cfg.Reconnect.MinDelay != d("500ms") || cfg.Reconnect.MaxDelay != d("90s") {
		t.Errorf("reconnect = %+v", cfg.Reconnect)
	}
}

func TestAllowPorts(t *testing.T) {
	cfg, err := ParseServer("hops.toml", []byte(tokenLine+"allowPorts = [{ start = 2000, end = 3000 }, { single = 3001 }]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []PortRange{{2000, 3000}, {3001, 3001}}; !reflect.DeepEqual(cfg.AllowPorts, want) {
		t.Errorf("AllowPorts = %v, want %v", cfg.AllowPorts, want)
	}
	priv := DefaultServer()
	priv.AllowPorts = []PortRange{{22, 22}, {443, 443}, {8000, 8000}}
	for port, want := range map[int]bool{22: true, 443: true, 80: false, 1024: false, 8000: true} {
		if got := priv.PortAllowed(port); got != want {
			t.Errorf("allowPorts 22, 443, 8000: PortAllowed(%d) = %v, want %v", port, got, want)
		}
	}
	for port, want := range map[int]bool{0: false, 1: false, 1999: false, 2000: true, 2500: true, 3000: true, 3001: true, 3002: false, 65536: false} {
		if got := cfg.PortAllowed(port); got != want {
			t.Errorf("PortAllowed(%d) = %v, want %v", port, got, want)
		}
	}
	all := DefaultServer()
	for port, want := range map[int]bool{-1: false, 0: false, 1: false, 22: false, 1023: false, 1024: true, 65535: true, 65536: false} {
		if got := all.PortAllowed(port); got != want {
			t.Errorf("no allowPorts: PortAllowed(%d) = %v, want %v", port, got, want)
		}
	}
}

func TestTLSFiles(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	for _, f := range []string{cert, key} {
		if err := os.WriteFile(f, []byte("pem"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := ParseServer("hops.toml", []byte(tokenLine+"[transport.tls]\ncertFile = '"+cert+"'\nkeyFile = '"+key+"'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if srv.Transport.TLS != (ServerTLSConfig{cert, key}) {
		t.Errorf("TLS = %+v", srv.Transport.TLS)
	}
	_, err = ParseServer("hops.toml", []byte(tokenLine+"[transport.tls]\ncertFile = '"+cert+"'\nkeyFile = '"+dir+"'\n"))
	checkErr(t, "hops.toml", err, `hops.toml:4: transport.tls.keyFile: cannot read key file "`+dir+`": is a directory; check the path (relative paths start at the working directory)`)

	if _, err := ParseClient("hopc.toml", []byte(tokenLine+"transport.tls.trustedCaFile = '"+cert+"'\n")); err != nil {
		t.Error(err)
	}
}

func TestValidateCodeBuilt(t *testing.T) {
	srv := DefaultServer()
	checkErr(t, "", srv.Validate(), `auth.token: missing or empty; set the secret shared by server and clients, e.g. auth.token = "${HOP_TOKEN}" with HOP_TOKEN exported (or give each user a token of its own in [[auth.users]])`)
	srv.Auth.Token = "t"
	if err := srv.Validate(); err != nil {
		t.Fatal(err)
	}
	srv.AllowPorts = []PortRange{{1, 2}, {5, 4}, {0, 3}}
	srv.Heartbeat.Interval = d("1m")
	checkErr(t, "", srv.Validate(), "allowPorts[1]: start 5 is greater than end 4; swap them\n"+
		"allowPorts[2].start: 0 is out of range; use 1-65535\n"+
		`heartbeat.interval: 1m is not shorter than heartbeat.timeout (30s), so a healthy peer would time out between two heartbeats; set heartbeat.timeout to at least 3× the interval ("3m") or shorten the interval`)

	cli := DefaultClient()
	cli.Auth.Token = "t"
	if err := cli.Validate(); err != nil {
		t.Fatal(err)
	}
	ssh := DefaultProxy(ProxyTCP)
	ssh.Name, ssh.LocalPort, ssh.RemotePort = "ssh", 22, 6000
	dup := ssh
	dup.IdleTimeout = d("1s")
	udp := ProxyConfig{Name: "dns", Type: ProxyUDP, LocalIP: "127.0.0.1", LocalPort: 53}
	cli.Proxies = []ProxyConfig{ssh, dup, udp}
	cli.Transport.TLS.CertSHA256 = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
	checkErr(t, "", cli.Validate(), `transport.tls.certSHA256: "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89" is not normalized; write it as "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789" (lower case, no colons)`+"\n"+
		"proxies[1].idleTimeout: only udp, sudp and xudp proxies have an idle timeout; remove it from this tcp proxy\n"+
		`proxies[1].name: "ssh" is already the name of proxies[0]; proxy names must be unique`+"\n"+
		"proxies[1].remotePort: tcp port 6000 is already used by proxies[0]; use another port, or 0 to let the server choose\n"+
		`proxies[2].idleTimeout: 0s is not allowed; use a positive duration such as "10s" (how long a UDP peer may stay silent)`)

	// Validate sees values only: a secret proxy's zero RemotePort is
	// "absent", and keys for other types are checked by value.
	cli = DefaultClient()
	cli.Auth.Token = "t"
	xtcp := DefaultProxy(ProxyXTCP)
	xtcp.Name, xtcp.LocalPort, xtcp.SecretKey = "ssh", 22, "0123456789"
	v := DefaultVisitor(ProxyXTCP)
	v.Name, v.ServerName, v.SecretKey, v.BindPort = "ssh-visitor", "ssh", "0123456789", 2222
	cli.Proxies, cli.Visitors = []ProxyConfig{xtcp}, []VisitorConfig{v}
	if err := cli.Validate(); err != nil {
		t.Fatal(err)
	}
	tcp := DefaultProxy(ProxyTCP)
	tcp.Name, tcp.LocalPort, tcp.SecretKey, tcp.AllowUsers = "web", 80, "0123456789", []string{"a"}
	xtcp.RemotePort, xtcp.SecretKey, xtcp.AllowUsers = 6000, "", []string{"bad id"}
	stcp := DefaultVisitor(ProxySTCP)
	stcp.Name, stcp.ServerName, stcp.SecretKey, stcp.BindPort = "ssh", "db", "0123456789", 2222
	stcp.FallbackTimeout, stcp.IdleTimeout = d("1s"), d("1s")
	v.KeepaliveTimeout = d("10s")
	cli.Proxies, cli.Visitors = []ProxyConfig{tcp, xtcp}, []VisitorConfig{v, stcp}
	checkErr(t, "", cli.Validate(), "proxies[0].secretKey: only stcp, sudp, xtcp and xudp proxies take secretKey; remove it from this tcp proxy\n"+
		"proxies[0].allowUsers: only stcp, sudp, xtcp and xudp proxies take allowUsers; remove it from this tcp proxy\n"+
		"proxies[1].remotePort: xtcp proxies have no public port on the server; visitors reach them through [[visitors]] entries on another hopc: remove remotePort\n"+
		`proxies[1].secretKey: missing or empty; it keys the authentication and encryption of the P2P path: set secretKey = "${HOP_SECRET}" with a long random HOP_SECRET exported (the same key in every visitor of this proxy)`+"\n"+
		`proxies[1].allowUsers[0]: "bad id" is not a valid user name; use 1-64 of A-Z a-z 0-9 . _ - (the user key of a visiting hopc), or "*" for any user`+"\n"+
		`visitors[0].keepaliveTimeout: 10s is not longer than keepaliveInterval (10s), so a healthy direct path would be declared dead between two keepalives; set keepaliveTimeout to at least 3× the interval ("30s") or shorten keepaliveInterval`+"\n"+
		"visitors[1].idleTimeout: only sudp and xudp visitors have an idle timeout; remove it from this stcp visitor\n"+
		"visitors[1].fallbackTimeout: only xtcp and xudp visitors take fallbackTimeout, since stcp always goes through hops; remove it from this stcp visitor\n"+
		`visitors[1].name: "ssh" is already the name of proxies[1]; names must be unique among proxies and visitors, so that logs name one thing`+"\n"+
		"visitors[1].bindPort: 127.0.0.1:2222 is already used by visitors[0]; two stream visitors (stcp, xtcp) cannot listen on the same address and port: change one bindPort")

	srv = DefaultServer()
	srv.Auth.Token = "t"
	srv.P2P.StunAltPort = 7000
	srv.P2P.StunAltAddr = "203.0.113.2"
	srv.WebServer.Port = 7000
	checkErr(t, "", srv.Validate(), "p2p.stunAltPort: 7000 is also bindPort, where hops already answers STUN; the alternate port must differ: set p2p.stunAltPort to another port, or 0 for none\n"+
		`p2p.stunAltAddr: needs bindAddr to be a concrete IP address of this host, not "0.0.0.0": the filtering tests (RFC 5780) tell the two addresses apart by which one answers, and a socket bound to every address cannot choose; set bindAddr to the primary address, e.g. "203.0.113.1"`+"\n"+
		"webServer.port: 7000 is also bindPort, where hopc clients connect; use another port, e.g. 7500, or 0 to turn the web API off")
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.toml")
	_, err := LoadServer(missing)
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrInvalid) {
		t.Errorf("LoadServer(missing) = %v; want a wrapped fs.ErrNotExist", err)
	}
	if want := "reading server config: open " + missing + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if _, err := LoadClient(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadClient(missing) = %v; want a wrapped fs.ErrNotExist", err)
	}

	path := filepath.Join(dir, "hopc.toml")
	if err := os.WriteFile(path, []byte(tokenLine+"serverPort = 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadClient(path)
	checkErr(t, path, err, path+":2: serverPort: 0 is out of range; use 1-65535")
}

func TestDuration(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{in: "10s", want: 10 * time.Second},
		{in: "500ms", want: 500 * time.Millisecond},
		{in: "1m30s", want: 90 * time.Second},
		{in: "0s"},
		{in: "10", err: `"10" has no unit; add one, e.g. "10s" (units: ms, s, m, h)`},
		{in: "0", err: `"0" has no unit; add one, e.g. "0s" (units: ms, s, m, h)`},
		{in: "", err: `empty duration; write a number with a unit, e.g. "10s" (units: ms, s, m, h)`},
		{in: "ten seconds", err: `"ten seconds" is not a valid duration; write a number with a unit, e.g. "10s", "500ms" or "1m30s" (units: ms, s, m, h)`},
	} {
		var got Duration
		err := got.UnmarshalText([]byte(c.in))
		switch {
		case c.err != "" && (err == nil || err.Error() != c.err):
			t.Errorf("UnmarshalText(%q) error = %v, want %s", c.in, err, c.err)
		case c.err == "" && (err != nil || got.Duration != c.want):
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for in, want := range map[time.Duration]string{0: "0s", time.Minute: "1m", time.Hour: "1h", 90 * time.Second: "1m30s", time.Hour + time.Second: "1h0m1s", 1500 * time.Millisecond: "1.5s"} {
		b, _ := Dur(in).MarshalText()
		var back Duration
		if string(b) != want || back.UnmarshalText(b) != nil || back.Duration != in {
			t.Errorf("MarshalText(%v) = %q (round trip %v), want %q", in, b, back, want)
		}
	}
}

// TestMarshalRoundTrip checks that a validated config written back as TOML
// parses to the same config: the struct tags match the keys.
func TestMarshalRoundTrip(t *testing.T) {
	srv := DefaultServer()
	srv.Auth.Token = "t"
	srv.AllowPorts = []PortRange{{2000, 3000}}
	srv.BindAddr = "203.0.113.1"
	srv.P2P = P2PConfig{StunAltPort: 3478, StunAltAddr: "203.0.113.2", TallyInterval: d("1h")}
	srv.WebServer = WebServerConfig{Addr: "::1", Port: 7500}
	srv.Auth.Users = []AuthUser{{Name: "ci", Token: "0123456789abcdef"}}
	srv.MaxProxiesPerClient = 3
	srv.Limits.MaxHandshakesPerIP, srv.Limits.UDPUnansweredTimeout = 2, d("750ms")
	srv.Mux.StreamCloseTimeout = d("1s")
	b, err := toml.Marshal(srv)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseServer("marshaled", b)
	if err != nil || !reflect.DeepEqual(values(back), srv) {
		t.Errorf("round trip: %v\n%s", err, b)
	}

	cli := DefaultClient()
	cli.Auth.Token = "t"
	cli.User = "laptop"
	cli.Limits.MaxStreamsPerSession = 10
	tcp, udp := DefaultProxy(ProxyTCP), DefaultProxy(ProxyUDP)
	tcp.Name, tcp.LocalPort = "ssh", 22
	udp.Name, udp.LocalPort, udp.RemotePort = "dns", 53, 6001
	cli.Proxies = []ProxyConfig{tcp, udp}
	const key = "0123456789"
	for i, typ := range []ProxyType{ProxySTCP, ProxySUDP, ProxyXTCP, ProxyXUDP} {
		p := DefaultProxy(typ)
		p.Name, p.LocalPort, p.SecretKey = string(typ), 1000, key
		v := DefaultVisitor(typ)
		v.Name, v.ServerName, v.SecretKey, v.BindPort = string(typ)+"-visitor", string(typ), key, 2000+i
		if typ == ProxyXUDP {
			p.AllowUsers = []string{"laptop", "*"}
			v.BindAddr, v.RetryInterval, v.ServerUser = "::1", d("1m"), "home"
		}
		cli.Proxies = append(cli.Proxies, p)
		cli.Visitors = append(cli.Visitors, v)
	}
	cli.Proxies = append(cli.Proxies,
		ProxyConfig{Name: "socks", Type: ProxyTCP, RemotePort: 6002, Plugin: PluginConfig{Type: PluginSOCKS5, Username: "u", Password: "p"}},
		ProxyConfig{Name: "app", Type: ProxySTCP, SecretKey: key, Plugin: PluginConfig{Type: PluginHTTP2HTTPS, LocalAddr: "127.0.0.1:443",
			HostHeaderRewrite: "app", RequestHeaders: HeaderOps{Set: map[string]string{"X-From-Where": "hop"}}}})
	if err := cli.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err = toml.Marshal(cli)
	if err != nil {
		t.Fatal(err)
	}
	cback, err := ParseClient("marshaled", b)
	if err != nil || !reflect.DeepEqual(values(cback), cli) {
		t.Errorf("round trip: %v\n%s", err, b)
	}
}

// TestConfFiles parses every example in conf/, and checks that the full
// examples write exactly the defaults except for the values they say are
// not defaults (the token and the proxies).
func TestConfFiles(t *testing.T) {
	const token, secret, ciToken = "token-from-the-environment", "secret-from-the-environment", "ci-token-from-the-environment"
	t.Setenv("HOP_TOKEN", token)
	t.Setenv("HOP_CI_TOKEN", ciToken)
	t.Setenv("HOP_SECRET", secret)
	www := t.TempDir()
	crt, key := "../../third_party/yamux/testdata/cert.pem", "../../third_party/yamux/testdata/key.pem"
	t.Setenv("HOP_WWW", www)
	t.Setenv("HOP_CRT", crt)
	t.Setenv("HOP_KEY", key)
	const httpPassword = "http-password-from-the-environment"
	t.Setenv("HOP_HTTP_PASSWORD", httpPassword)
	files, err := filepath.Glob("../../conf/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no conf files: %v", err)
	}
	servers := map[string]*ServerConfig{}
	clients := map[string]*ClientConfig{}
	for _, f := range files {
		base := filepath.Base(f)
		switch {
		case strings.HasPrefix(base, "hops"):
			cfg, err := LoadServer(f)
			if err != nil {
				t.Errorf("%v", err)
				continue
			}
			if w := cfg.Warnings(); w != nil {
				t.Errorf("%s: warnings %q", f, w)
			}
			servers[base] = cfg
		case strings.HasPrefix(base, "hopc"):
			cfg, err := LoadClient(f)
			if err != nil {
				t.Errorf("%v", err)
				continue
			}
			if w := cfg.Warnings(); w != nil {
				t.Errorf("%s: warnings %q", f, w)
			}
			clients[base] = cfg
		default:
			t.Errorf("%s: name must start with hops (server) or hopc (client)", f)
		}
	}

	if s, c := servers["hops.toml"], clients["hopc.toml"]; s != nil && c != nil {
		if s.Auth.Token != c.Auth.Token || s.BindPort != c.ServerPort {
			t.Errorf("hops.toml and hopc.toml do not work together: token %q/%q, port %d/%d", s.Auth.Token, c.Auth.Token, s.BindPort, c.ServerPort)
		}
		if len(c.Proxies) != 2 || c.Proxies[0].LocalPort != 22 || c.Proxies[0].RemotePort != 6000 || c.Proxies[0].Type != ProxyTCP ||
			c.Proxies[1].LocalPort != 53 || c.Proxies[1].RemotePort != 6001 || c.Proxies[1].Type != ProxyUDP {
			t.Errorf("hopc.toml proxies = %+v, want ssh 22→6000/tcp and dns 53→6001/udp", c.Proxies)
		}
	}

	// The secret-proxy pair works with hops.toml and with each other:
	// every visitor finds its proxy, of the same type and key, and is let
	// in; every proxy is visited; all three kinds are shown.
	owner, visitor := clients["hopc_xtcp_owner.toml"], clients["hopc_xtcp_visitor.toml"]
	if s := servers["hops.toml"]; s != nil && owner != nil && visitor != nil {
		for name, c := range map[string]*ClientConfig{"hopc_xtcp_owner.toml": owner, "hopc_xtcp_visitor.toml": visitor} {
			if c.Auth.Token != s.Auth.Token || c.ServerPort != s.BindPort || c.ServerAddress() != clients["hopc.toml"].ServerAddress() {
				t.Errorf("%s does not work with hops.toml: token %q/%q, server %s, bindPort %d", name, c.Auth.Token, s.Auth.Token, c.ServerAddress(), s.BindPort)
			}
		}
		if len(owner.Visitors) != 0 || len(visitor.Proxies) != 0 {
			t.Errorf("the owner has visitors or the visitor has proxies: %+v, %+v", owner.Visitors, visitor.Proxies)
		}
		checkVisits(t, "hopc_xtcp_owner.toml", owner, visitor, ProxyXTCP, ProxyXUDP, ProxySTCP)
		if !slices.ContainsFunc(owner.Proxies, func(p ProxyConfig) bool { return len(p.AllowUsers) > 0 }) {
			t.Errorf("hopc_xtcp_owner.toml: no proxy shows allowUsers")
		}
	}
	if full := clients["hopc_full.toml"]; full != nil {
		checkVisits(t, "hopc_full.toml", full, full, ProxyXTCP, ProxyXUDP)
	}

	if got := servers["hops_full.toml"]; got != nil {
		want := DefaultServer()
		want.Auth.Token = token
		want.Auth.Users = []AuthUser{{Name: "ci", Token: ciToken}}
		want.NodeName = "hops-1" // --- scaling: its default is derived (<hostname>:<bindPort>), the file shows an example
		if !reflect.DeepEqual(values(got), want) {
			t.Errorf("hops_full.toml differs from the defaults:\ngot  %+v\nwant %+v", *got, want)
		}
	}
	if got := clients["hopc_full.toml"]; got != nil {
		want := DefaultClient()
		want.Auth.Token = token
		want.Heartbeat.Interval = AutoDuration // the recommended setting the file shows
		ssh, dns := DefaultProxy(ProxyTCP), DefaultProxy(ProxyUDP)
		ssh.Name, ssh.LocalPort, ssh.RemotePort = "ssh", 22, 6000
		dns.Name, dns.LocalPort, dns.RemotePort = "dns", 53, 6001
		sshP2P, dnsP2P := DefaultProxy(ProxyXTCP), DefaultProxy(ProxyXUDP)
		sshP2P.Name, sshP2P.LocalPort, sshP2P.SecretKey = "ssh-p2p", 22, secret
		dnsP2P.Name, dnsP2P.LocalPort, dnsP2P.SecretKey = "dns-p2p", 53, secret
		plugin := func(name string, port int, pc PluginConfig) ProxyConfig {
			return ProxyConfig{Name: name, Type: ProxyTCP, RemotePort: port, Plugin: pc}
		}
		want.Proxies = []ProxyConfig{ssh, dns, sshP2P, dnsP2P,
			plugin("docker", 6003, PluginConfig{Type: PluginUnixSocket, UnixPath: "/var/run/docker.sock"}),
			plugin("socks", 6004, PluginConfig{Type: PluginSOCKS5}),
			plugin("web-proxy", 6005, PluginConfig{Type: PluginHTTPProxy}),
			plugin("files", 6006, PluginConfig{Type: PluginStaticFile, LocalPath: www}),
			plugin("https-app", 6007, PluginConfig{Type: PluginHTTPS2HTTP, LocalAddr: "127.0.0.1:8080", CrtPath: crt, KeyPath: key}),
			plugin("http-to-https", 6008, PluginConfig{Type: PluginHTTP2HTTPS, LocalAddr: "127.0.0.1:8443"}),
		}
		web, webTLS := DefaultProxy(ProxyHTTP), DefaultProxy(ProxyHTTPS)
		web.Name, web.LocalPort, web.CustomDomains, web.Subdomain = "web", 8080, []string{"www.example.com", "*.apps.example.com"}, "web"
		web.Locations, web.HTTPUser, web.HTTPPassword, web.HostHeaderRewrite = []string{"/", "/api"}, "admin", httpPassword, "localhost"
		web.RequestHeaders.Set = map[string]string{"X-From": "hop"}
		web.ResponseHeaders.Set = map[string]string{"X-Served-By": "hop"}
		webTLS.Name, webTLS.LocalPort, webTLS.CustomDomains = "web-tls", 8443, []string{"secure.example.com"}
		want.Proxies = append(want.Proxies, web, webTLS)
		tunnel := DefaultProxy(ProxyTCPMux) // --- tcpmux
		tunnel.Name, tunnel.LocalPort, tunnel.Multiplexer, tunnel.CustomDomains = "tunnel", 22, MultiplexerHTTPConnect, []string{"tunnel1"}
		tunnel.HTTPUser, tunnel.HTTPPassword = "tunnel", web.HTTPPassword
		want.Proxies = append(want.Proxies, tunnel)
		webA := DefaultProxy(ProxyTCP) // --- ppbw
		webA.Name, webA.LocalPort, webA.RemotePort = "web-a", 8080, 6080
		webA.LoadBalancer = ProxyLoadBalancer{Group: "web", GroupKey: "web-group-key"}
		webA.HealthCheck = ProxyHealthCheck{Type: "http", Path: "/status", TimeoutSeconds: 3, MaxFailed: 3, IntervalSeconds: 10}
		want.Proxies = append(want.Proxies, webA)
		blogA := DefaultProxy(ProxyHTTP) // an http group member, an https proxy with a plugin
		blogA.Name, blogA.LocalPort, blogA.CustomDomains = "blog-a", 8081, []string{"blog.example.com"}
		blogA.LoadBalancer = ProxyLoadBalancer{Group: "blog", GroupKey: "blog-group-key"}
		blogA.HealthCheck = ProxyHealthCheck{Type: "http", Path: "/", TimeoutSeconds: 3, MaxFailed: 1, IntervalSeconds: 10}
		appTLS := ProxyConfig{Name: "app-tls", Type: ProxyHTTPS, CustomDomains: []string{"app.example.com"},
			Plugin: PluginConfig{Type: PluginHTTPS2HTTP, LocalAddr: "127.0.0.1:8082", CrtPath: crt, KeyPath: key}}
		want.Proxies = append(want.Proxies, blogA, appTLS)
		sshV, dnsV := DefaultVisitor(ProxyXTCP), DefaultVisitor(ProxyXUDP)
		sshV.Name, sshV.ServerName, sshV.SecretKey, sshV.BindPort = "ssh-p2p-visitor", "ssh-p2p", secret, 6022
		dnsV.Name, dnsV.ServerName, dnsV.SecretKey, dnsV.BindPort = "dns-p2p-visitor", "dns-p2p", secret, 6053
		sshV.KeepaliveInterval, dnsV.KeepaliveInterval = AutoDuration, AutoDuration // the recommended setting the file shows
		want.Visitors = []VisitorConfig{sshV, dnsV}
		if !reflect.DeepEqual(values(got), want) {
			t.Errorf("hopc_full.toml differs from the defaults:\ngot  %+v\nwant %+v", *got, want)
		}
	}

	// Every key of the full examples is written out, so that a new key
	// cannot be forgotten there; keys kept only so that old configs load
	// (with a warning) are not.
	deprecatedKeys := map[string]bool{"visitors[].fallbackTimeout": true}
	elem := regexp.MustCompile(`\[[0-9]+\]`)
	for name, root := range map[string]reflect.Type{"hops_full.toml": reflect.TypeOf(rawServer{}), "hopc_full.toml": reflect.TypeOf(rawClient{})} {
		data, err := os.ReadFile(filepath.Join("../../conf", name))
		if err != nil {
			t.Fatal(err)
		}
		ix, err := buildIndex(data)
		if err != nil {
			t.Fatal(err)
		}
		written := make(map[string]bool)
		for p := range ix.byPath {
			written[elem.ReplaceAllString(p, "[]")] = true
		}
		for _, key := range leafKeys(root, "") {
			if !written[key] && !deprecatedKeys[key] {
				t.Errorf("%s: key %s is not documented", name, key)
			}
		}
	}
}

// checkVisits checks that every visitor of visitor reaches a secret proxy
// of owner (same name, type and key, and allowed in), that every secret
// proxy of owner is visited, and that the visitors have the types want.
func checkVisits(t *testing.T, file string, owner, visitor *ClientConfig, want ...ProxyType) {
	t.Helper()
	visited := make(map[string]bool)
	var types []ProxyType
	for _, v := range visitor.Visitors {
		i := slices.IndexFunc(owner.Proxies, func(p ProxyConfig) bool { return p.Name == v.ServerName })
		if i < 0 {
			t.Errorf("%s: visitor %s: no proxy named %q", file, v.Name, v.ServerName)
			continue
		}
		p := owner.Proxies[i]
		if v.OwnerUser(visitor.User) != owner.User {
			t.Errorf("%s: visitor %s looks for a proxy of user %q, but the owner is user %q", file, v.Name, v.OwnerUser(visitor.User), owner.User)
		}
		if p.Type != v.Type || p.SecretKey != v.SecretKey || !p.AllowsUser(owner.User, visitor.User) {
			t.Errorf("%s: visitor %s (%s, user %q) cannot reach proxy %s (%s, owner %q, allowUsers %q) or their secretKeys differ",
				file, v.Name, v.Type, visitor.User, p.Name, p.Type, owner.User, p.AllowUsers)
		}
		visited[p.Name] = true
		types = append(types, v.Type)
	}
	for _, p := range owner.Proxies {
		if p.Type.IsSecret() && !visited[p.Name] {
			t.Errorf("%s: no visitor for proxy %s", file, p.Name)
		}
	}
	if !reflect.DeepEqual(types, want) {
		t.Errorf("%s: visitor types %v, want %v", file, types, want)
	}
}

// leafKeys lists the key paths of the raw shape t. The keys of the entries
// of an array of tables are under name[], and each must be written in some
// entry (no proxy type takes every proxy key). allowPorts and arrays of
// strings are leaves.
func leafKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for _, k := range keysOf(t) {
		f, _ := fieldByKey(t, k)
		ft := deref(f.Type)
		switch {
		case ft.Kind() == reflect.Struct:
			keys = append(keys, leafKeys(ft, join(prefix, k))...)
		case ft.Kind() == reflect.Slice && k != "allowPorts" && deref(ft.Elem()).Kind() == reflect.Struct:
			keys = append(keys, leafKeys(deref(ft.Elem()), join(prefix, k)+"[]")...)
		default:
			keys = append(keys, join(prefix, k))
		}
	}
	return keys
}

func TestExpandEnv(t *testing.T) {
	env := map[string]string{"A": "1", "EMPTY": "", "B_2": "two"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, c := range []struct{ in, want, probs string }{
		{in: "plain", want: "plain"},
		{in: "$A and $ alone", want: "$A and $ alone"},
		{in: "${A}", want: "1"},
		{in: "x${A}y${B_2}z", want: "x1ytwoz"},
		{in: "[${EMPTY}]", want: "[]"},
		{in: "$${A}", want: "${A}"},
		{in: "$$${A}", want: "$${A}"},
		{in: "${A}$${A}${A}", want: "1${A}1"},
		{in: "${NOPE}", probs: "environment variable NOPE is not set (referenced as ${NOPE}); export it or write the value directly"},
		{in: "${}", probs: `"${}" is not a valid variable reference; names are letters, digits and _ not starting with a digit (write $${ for a literal "${")`},
		{in: "${A", probs: `"${" without a closing "}"; write ${NAME}, or $${ for a literal "${"`},
		{in: "${NOPE} ${NADA}", probs: "environment variable NOPE is not set (referenced as ${NOPE}); export it or write the value directly|" +
			"environment variable NADA is not set (referenced as ${NADA}); export it or write the value directly"},
	} {
		got, probs := expandEnv(c.in, lookup)
		if strings.Join(probs, "|") != c.probs || (c.probs == "" && got != c.want) {
			t.Errorf("expandEnv(%q) = %q, %q; want %q, %q", c.in, got, probs, c.want, c.probs)
		}
	}
}

func TestEnvValues(t *testing.T) {
	t.Setenv("HOP_TEST_TOKEN", "from env")
	t.Setenv("HOP_TEST_ADDR", "hop.example.com")
	dir := t.TempDir()
	cfg, err := ParseClient("hopc.toml", []byte(`
serverAddr = "${HOP_TEST_ADDR}"
auth.token = "${HOP_TEST_TOKEN}"
[log]
to = '`+dir+`/$${HOP_TEST_ADDR}.log'
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerAddr != "hop.example.com" || cfg.Auth.Token != "from env" || cfg.Log.To != dir+"/${HOP_TEST_ADDR}.log" {
		t.Errorf("got %q %q %q", cfg.ServerAddr, cfg.Auth.Token, cfg.Log.To)
	}
}

func TestWarnings(t *testing.T) {
	srv, err := ParseServer("hops.toml", []byte("bindPort = 7000\n[auth]\ntoken = \"short\"\n[[auth.users]]\nname = \"ci\"\ntoken = \"0123456789abcdef\"\n[[auth.users]]\nname = \"laptop\"\ntoken = \"0123456789abcde\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"hops.toml:3: auth.token: only 5 bytes; a short token is easier to guess: use at least 16, e.g. the output of: openssl rand -hex 24",
		"hops.toml:9: auth.users[1].token: only 15 bytes; a short token is easier to guess: use at least 16, e.g. the output of: openssl rand -hex 24",
	}
	if got := srv.Warnings(); !reflect.DeepEqual(got, want) {
		t.Errorf("server warnings:\n%q\nwant\n%q", got, want)
	}
	// A config built in code has no lines; one without remarks has none.
	code := DefaultServer()
	code.Auth.Token = "short"
	if got, want := code.Warnings(), []string{"auth.token: only 5 bytes; a short token is easier to guess: use at least 16, e.g. the output of: openssl rand -hex 24"}; !reflect.DeepEqual(got, want) {
		t.Errorf("code-built warnings = %q, want %q", got, want)
	}
	code.Auth.Token = "0123456789abcdef"
	if got := code.Warnings(); got != nil {
		t.Errorf("warnings of a long token: %q", got)
	}

	cli, err := ParseClient("hopc.toml", []byte("\nauth.token = \"${HOP_TEST_TOKEN}\"\n"))
	if err == nil {
		t.Fatal("unset variable accepted")
	}
	t.Setenv("HOP_TEST_TOKEN", "0123456")
	if cli, err = ParseClient("hopc.toml", []byte("\nauth.token = \"${HOP_TEST_TOKEN}\"\n")); err != nil {
		t.Fatal(err)
	}
	if got, want := cli.Warnings(), []string{"hopc.toml:2: auth.token: only 7 bytes; a short token is easier to guess: use at least 16, e.g. the output of: openssl rand -hex 24"}; !reflect.DeepEqual(got, want) {
		t.Errorf("client warnings = %q, want %q", got, want)
	}
	// Warnings follow the values: a token fixed in code is no longer short.
	cli.Auth.Token = "0123456789abcdef0123"
	if got := cli.Warnings(); got != nil {
		t.Errorf("warnings after fixing the token: %q", got)
	}
}

func TestLogTo(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ to, want string }{
		{"stderr", ""},
		{"stdout", ""},
		{"console", ""},
		{filepath.Join(dir, "hop.log"), ""}, // created at start
		{file, ""},                          // appended to
		{"hop.log", ""},                     // the working directory
		{filepath.Join(dir, "missing", "hop.log"), "hops.toml:2: log.to: directory " + filepath.Join(dir, "missing") + ` does not exist; create it, or set log.to to "stderr", "stdout" or a file in a directory that exists`},
		{filepath.Join(file, "hop.log"), "hops.toml:2: log.to: " + file + ` is not a directory; create it, or set log.to to "stderr", "stdout" or a file in a directory that exists`},
		{dir, "hops.toml:2: log.to: " + dir + ` is a directory; write the path of a file in it, e.g. "` + filepath.Join(dir, "hop.log") + `"`},
	} {
		_, err := ParseServer("hops.toml", []byte(tokenLine+"log.to = '"+c.to+"'\n"))
		checkErr(t, "hops.toml", err, c.want)
	}

	// Permissions: root may write anywhere, so only a user sees these.
	if os.Geteuid() == 0 {
		t.Log("running as root: skipping the permission cases")
		return
	}
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	rofile := filepath.Join(dir, "ro.log")
	if err := os.WriteFile(rofile, nil, 0o400); err != nil {
		t.Fatal(err)
	}
	_, err := ParseServer("hops.toml", []byte(tokenLine+"log.to = '"+filepath.Join(ro, "hop.log")+"'\n"))
	checkErr(t, "hops.toml", err, "hops.toml:2: log.to: directory "+ro+" is not writable by this user, so hop.log cannot be created there; fix its permissions or choose another directory")
	_, err = ParseServer("hops.toml", []byte(tokenLine+"log.to = '"+rofile+"'\n"))
	checkErr(t, "hops.toml", err, "hops.toml:2: log.to: file "+rofile+" is not writable by this user; fix its permissions or choose another file")
}

// TestFrpKeysExist checks that every key of hop named for one of frp's
// exists on the side it is for, and that none of frp's keys named there
// is a key of hop (it would never be unknown).
func TestFrpKeysExist(t *testing.T) {
	sides := map[string][]reflect.Type{
		"":     {reflect.TypeOf(rawServer{}), reflect.TypeOf(rawClient{})},
		"hops": {reflect.TypeOf(rawServer{})},
		"hopc": {reflect.TypeOf(rawClient{})},
	}
	for from, h := range frpKeyNames {
		if h.to == "" && h.msg == "" {
			t.Errorf("%s: neither a key of hop nor an explanation", from)
		}
		for _, root := range sides[h.side] {
			if _, ok := schemaType(root, strings.ReplaceAll(from, "[]", "[0]")); ok {
				t.Errorf("%s is a key of hop in %s, so it is never unknown", from, root.Name())
			}
			if h.to == "" {
				continue
			}
			to := strings.ReplaceAll(h.to, "[]", "[0]")
			if _, ok := schemaType(root, to); !ok {
				t.Errorf("%s: hop has no key %s in %s", from, h.to, root.Name())
			}
			if (h.unit != "" || h.perHour) && !isDuration(root, to) {
				t.Errorf("%s: %s is not a duration", from, h.to)
			}
		}
	}
}

func TestValidateCodeBuiltAuthAndLimits(t *testing.T) {
	srv := DefaultServer()
	srv.Auth.Users = []AuthUser{{Name: "ci", Token: "0123456789abcdef"}}
	if err := srv.Validate(); err != nil {
		t.Fatalf("users without a shared token: %v", err)
	}
	srv.Auth.Token = PlaceholderToken
	srv.Limits = ServerLimits{}
	srv.MaxProxiesPerClient = 0
	srv.WebServer.Addr = "192.0.2.1"
	checkErr(t, "", srv.Validate(), `auth.token: "change-me" is the placeholder of the example files, which anyone can read; set a real secret, e.g. the output of: openssl rand -hex 24 (best kept out of the file: token = "${HOP_TOKEN}" with HOP_TOKEN exported)`+"\n"+
		`maxProxiesPerClient: 0 is not allowed; set the most proxies one client may register, 1 or more (default 64); there is no "unlimited"`+"\n"+
		`webServer.addr: "192.0.2.1" is not a loopback address, and the web API has no login: anyone who reaches it could read client addresses (and on hopc stop or reload it); set webServer.user and webServer.password (and, across networks, webServer.tls.certFile and keyFile), or listen on loopback (127.0.0.1, ::1 or localhost)`+"\n"+
		"limits.maxHandshakes: 0 is not allowed; set 1 or more (default 128): connections still in TLS and login, over all sources\n"+
		"limits.maxHandshakesPerIP: 0 is not allowed; set 1 or more (default 8): connections still in TLS and login from one IP address\n"+
		"limits.maxStreamsPerSession: 0 is not allowed; set 1 or more (default 1024): streams a client may have open or pending\n"+
		"limits.maxUDPFlowsPerProxy: 0 is not allowed; set 1 or more (default 1024): UDP flows of one udp proxy\n"+
		"limits.maxUDPFlowsPerIP: 0 is not allowed; set 1 or more (default 64): UDP flows of one source IP address on one proxy\n"+
		"limits.stunPerIPPerSecond: 0 is not allowed; set 1 or more (default 20): STUN requests answered per second for one IP address\n"+
		"limits.maxP2PAttemptsPerClient: 0 is not allowed; set 1 or more (default 32): P2P attempts one client may have in progress\n"+
		"limits.maxP2POffersPerProxy: 0 is not allowed; set 1 or more (default 8): visitor offers waiting for the owner of one secret proxy\n"+
		`limits.udpUnansweredTimeout: 0s is not allowed; use a positive duration such as "10s" (a UDP flow that never got a reply closes after this)`)

	cli := DefaultClient()
	cli.Auth.Token = "0123456789abcdef"
	cli.User = "a b"
	cli.Auth.Users = []AuthUser{{Name: "ci", Token: "0123456789abcdef"}}
	cli.Limits.MaxStreamsPerSession = 0
	cli.Mux.StreamCloseTimeout = Duration{}
	checkErr(t, "", cli.Validate(), `user: "a b" is not a valid user name; use 1-64 of A-Z a-z 0-9 . _ - (or leave it empty)`+"\n"+
		"auth.users: only hops takes auth.users; hopc logs in as one user: set user at the top level and that user's token in auth.token\n"+
		`mux.streamCloseTimeout: 0s is not allowed; use a positive duration such as "10s" (how long a closed stream waits for the peer's close before it is reset)`+"\n"+
		"limits.maxStreamsPerSession: 0 is not allowed; set 1 or more (default 1024): streams the server may have open or pending in the session")
}

func TestClientPortMapping(t *testing.T) {
	for body, want := range map[string]bool{"": true, "[p2p]\nportMapping = false\n": false, "[p2p]\nportMapping = true\n": true} {
		cfg, err := ParseClient("hopc.toml", []byte(tokenLine+body))
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		if cfg.P2P.PortMapping != want {
			t.Errorf("%q: portMapping %v, want %v", body, cfg.P2P.PortMapping, want)
		}
	}
}
