package config

import (
	"reflect"
	"testing"
)

var tcpmuxServerCases = []errorCase{
	{name: "tcpmux port", toml: tokenLine + "tcpmuxHTTPConnectPort = 1337\ntcpmuxPassthrough = true\n"},
	{name: "every vhost port is bindPort", toml: tokenLine + "bindPort = 7000\nvhostHTTPPort = 7000\nvhostHTTPSPort = 7000\ntcpmuxHTTPConnectPort = 7000\n"},
	{name: "tcpmux port range", toml: tokenLine + "tcpmuxHTTPConnectPort = 70000\n", want: "hops.toml:2: tcpmuxHTTPConnectPort: 70000 is out of range; use 0-65535 (0 turns it off)"},
	{name: "tcpmux port is vhostHTTPPort", toml: tokenLine + "vhostHTTPPort = 8080\ntcpmuxHTTPConnectPort = 8080\n",
		want: "hops.toml:3: tcpmuxHTTPConnectPort: 8080 is also vhostHTTPPort (line 2); they need a port each (only bindPort may be shared, as hops tells hopc's TLS, https SNI and plain HTTP apart by their first bytes there)"},
	{name: "vhost port is the web server's", toml: tokenLine + "vhostHTTPPort = 7500\nwebServer.port = 7500\n",
		want: "hops.toml:2: vhostHTTPPort: 7500 is also webServer.port, where the dashboard and API listen; use another port"},
	{name: "tcpmux bool as string", toml: tokenLine + "tcpmuxPassthrough = \"yes\"\n", want: "hops.toml:2: tcpmuxPassthrough: expected true or false (no quotes), found a string"},
}

var tcpmuxClientCases = []errorCase{
	{name: "tcpmux proxy", toml: tokenLine + "[[proxies]]\nname = \"t\"\ntype = \"tcpmux\"\nmultiplexer = \"httpconnect\"\nlocalPort = 10701\ncustomDomains = [\"tunnel1\"]\nhttpUser = \"u\"\nhttpPassword = \"p\"\nrouteByHTTPUser = \"u\"\ntransport.proxyProtocolVersion = \"v2\"\n"},
	{name: "tcpmux group", toml: tokenLine + "[[proxies]]\nname = \"t\"\ntype = \"tcpmux\"\nmultiplexer = \"httpconnect\"\nlocalPort = 10701\ncustomDomains = [\"tunnel1\"]\nloadBalancer.group = \"g\"\nloadBalancer.groupKey = \"k\"\n"},
	{name: "tcpmux without multiplexer", toml: tokenLine + "[[proxies]]\nname = \"t\"\ntype = \"tcpmux\"\nlocalPort = 10701\ncustomDomains = [\"tunnel1\"]\n",
		want: "hopc.toml:2: proxies[0].multiplexer: missing; a tcpmux proxy needs multiplexer = \"httpconnect\" (HTTP CONNECT routed by its host, frp's only multiplexer)"},
	{name: "tcpmux bad multiplexer", toml: tokenLine + "[[proxies]]\nname = \"t\"\ntype = \"tcpmux\"\nmultiplexer = \"sni\"\nlocalPort = 10701\ncustomDomains = [\"tunnel1\"]\n",
		want: "hopc.toml:5: proxies[0].multiplexer: \"sni\" is not a multiplexer; write multiplexer = \"httpconnect\" (HTTP CONNECT routed by its host, the only one, as in frp)"},
	{name: "tcpmux http keys", toml: tokenLine + "[[proxies]]\nname = \"t\"\ntype = \"tcpmux\"\nmultiplexer = \"httpconnect\"\nlocalPort = 10701\ncustomDomains = [\"tunnel1\"]\nlocations = [\"/\"]\nremotePort = 5\nhttpUser = \"u\"\n",
		want: "hopc.toml:8: proxies[0].locations: a tcpmux proxy does not take locations: hops only reads the CONNECT request and tunnels the bytes after it, never seeing the requests inside; remove it\n" +
			"hopc.toml:9: proxies[0].remotePort: tcpmux proxies share the server's tcpmuxHTTPConnectPort and are routed by domain: remove remotePort\n" +
			"hopc.toml:10: proxies[0].httpUser: httpUser and httpPassword go together: set both to require them in the CONNECT request's Proxy-Authorization, or neither"},
	{name: "tcpmux without domain", toml: tokenLine + "[[proxies]]\nname = \"t\"\ntype = \"tcpmux\"\nmultiplexer = \"httpconnect\"\nlocalPort = 10701\n",
		want: "hopc.toml:2: proxies[0].customDomains: a tcpmux proxy needs a domain: set customDomains = [\"app.example.com\"], or subdomain = \"app\" when hops has subDomainHost"},
	{name: "multiplexer on tcp", toml: tokenLine + "[[proxies]]\nname = \"t\"\ntype = \"tcp\"\nmultiplexer = \"httpconnect\"\nlocalPort = 22\nremotePort = 6000\n",
		want: "hopc.toml:5: proxies[0].multiplexer: only tcpmux proxies take multiplexer; remove it from this tcp proxy"},
	{name: "tcpmux plugin", toml: tokenLine + "[[proxies]]\nname = \"t\"\ntype = \"tcpmux\"\nmultiplexer = \"httpconnect\"\ncustomDomains = [\"tunnel1\"]\n[proxies.plugin]\ntype = \"socks5\"\n",
		want: "hopc.toml:7: proxies[0].plugin: a tcpmux proxy does not take a plugin; plugins run on tcp, stcp, xtcp, http, https proxies"},
	{name: "same tcpmux domain twice", toml: tokenLine + "[[proxies]]\nname = \"a\"\ntype = \"tcpmux\"\nmultiplexer = \"httpconnect\"\nlocalPort = 1\ncustomDomains = [\"t\"]\n[[proxies]]\nname = \"b\"\ntype = \"tcpmux\"\nmultiplexer = \"httpconnect\"\nlocalPort = 2\ncustomDomains = [\"t\"]\n",
		want: "hopc.toml:13: proxies[1].customDomains: t location \"/\" is also routed to proxies[0] (line 2); hops would refuse this proxy: give it another domain or location, or put both in one loadBalancer.group"},
}

func TestTCPMuxServerConfig(t *testing.T) {
	for _, c := range tcpmuxServerCases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseServer("hops.toml", []byte(c.toml))
			checkErr(t, "hops.toml", err, c.want)
		})
	}
}

func TestTCPMuxClientConfig(t *testing.T) {
	for _, c := range tcpmuxClientCases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseClient("hopc.toml", []byte(c.toml))
			checkErr(t, "hopc.toml", err, c.want)
		})
	}
}

// A vhost port equal to bindPort is served on bindAddr: a proxyBindAddr
// that differs is pointed out.
func TestSharedPortWarning(t *testing.T) {
	cfg, err := ParseServer("hops.toml", []byte("auth.token = \"a-token-long-enough-for-no-warning\"\n"+"bindAddr = \"127.0.0.1\"\nproxyBindAddr = \"0.0.0.0\"\nvhostHTTPPort = 7000\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`hops.toml:4: vhostHTTPPort: 7000 is bindPort, so it is served on bindAddr "127.0.0.1" together with hopc's connections, not on proxyBindAddr "0.0.0.0"`}
	if got := cfg.Warnings(); !reflect.DeepEqual(got, want) {
		t.Errorf("warnings %q, want %q", got, want)
	}
	if cfg.VhostHTTPPort != cfg.BindPort {
		t.Errorf("vhostHTTPPort %d, want bindPort %d", cfg.VhostHTTPPort, cfg.BindPort)
	}
}

func TestTCPMuxProxyFields(t *testing.T) {
	cfg, err := ParseClient("hopc.toml", []byte(tcpmuxClientCases[0].toml))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Proxies[0]
	if p.Type != ProxyTCPMux || p.Multiplexer != MultiplexerHTTPConnect || !reflect.DeepEqual(p.CustomDomains, []string{"tunnel1"}) ||
		p.HTTPUser != "u" || p.HTTPPassword != "p" || p.RouteByHTTPUser != "u" || p.LocalPort != 10701 {
		t.Errorf("proxy %+v", p)
	}
}
