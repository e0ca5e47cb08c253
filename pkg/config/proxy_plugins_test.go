package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestPluginHeaderFromEnv(t *testing.T) {
	t.Setenv("HOP_FROM", "hop")
	cfg, err := ParseClient("hopc.toml", []byte(tokenLine+"[[proxies]]\nname = \"s\"\ntype = \"tcp\"\nremotePort = 6000\n[proxies.plugin]\ntype = \"http2https\"\nlocalAddr = \"127.0.0.1:443\"\nrequestHeaders.set.x-from = \"${HOP_FROM}\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Proxies[0].Plugin.RequestHeaders.Set["x-from"]; got != "hop" {
		t.Fatalf("x-from = %q, want hop", got)
	}
	if cfg.Proxies[0].LocalIP != "" || cfg.Proxies[0].LocalPort != 0 {
		t.Fatalf("a plugin proxy has a local service: %+v", cfg.Proxies[0])
	}
}

// TestPluginValidate: configs built in code are checked as files are.
func TestPluginValidate(t *testing.T) {
	base := func(pt ProxyType, pc PluginConfig) *ClientConfig {
		c := DefaultClient()
		c.Auth.Token = "s3cret"
		p := ProxyConfig{Name: "p", Type: pt, Plugin: pc}
		if pt.IsSecret() {
			p.SecretKey = "12345678"
		}
		if pt.IsDatagram() {
			p.IdleTimeout = Dur(DefaultUDPIdleTimeout)
		}
		c.Proxies = []ProxyConfig{p}
		return &c
	}
	for _, tc := range []struct {
		name string
		cfg  *ClientConfig
		want string // substring of the error, "" for none
	}{
		{"socks5 on tcp", base(ProxyTCP, PluginConfig{Type: PluginSOCKS5}), ""},
		{"http_proxy on xtcp", base(ProxyXTCP, PluginConfig{Type: PluginHTTPProxy, HTTPUser: "u", HTTPPassword: "p"}), ""},
		{"on sudp", base(ProxySUDP, PluginConfig{Type: PluginSOCKS5}), "proxies[0].plugin: a sudp proxy carries UDP datagrams"},
		{"unknown", base(ProxyTCP, PluginConfig{Type: "ftp"}), `proxies[0].plugin.type: "ftp" is not a plugin type; use one of: unix_domain_socket, socks5`},
		{"localPort", func() *ClientConfig {
			c := base(ProxyTCP, PluginConfig{Type: PluginSOCKS5})
			c.Proxies[0].LocalPort = 22
			return c
		}(), "proxies[0].localPort: a proxy with a [proxies.plugin] has no local service port"},
		{"password only", base(ProxyTCP, PluginConfig{Type: PluginSOCKS5, Password: "x"}), "proxies[0].plugin.username: missing or empty while password is set"},
		{"http2https without localAddr", base(ProxyTCP, PluginConfig{Type: PluginHTTP2HTTPS}), "proxies[0].plugin.localAddr: missing or empty"},
		{"bad header value", base(ProxyTCP, PluginConfig{Type: PluginHTTP2HTTPS, LocalAddr: "127.0.0.1:443", RequestHeaders: HeaderOps{Set: map[string]string{"X-A": "a\r\nb"}}}), "proxies[0].plugin.requestHeaders.set.X-A: the value is not a valid HTTP header value"},
		{"bad host rewrite", base(ProxyTCP, PluginConfig{Type: PluginHTTP2HTTPS, LocalAddr: "127.0.0.1:443", HostHeaderRewrite: "a b"}), `proxies[0].plugin.hostHeaderRewrite: "a b" is not a valid Host header`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v; want it to contain %q", err, tc.want)
			}
		})
	}
}

// frp ignores localIP and localPort next to a plugin, so hop takes such an
// frp config as it is and warns.
func TestPluginIgnoresLocalService(t *testing.T) {
	cfg, err := ParseClient("hopc.toml", []byte(tokenLine+"[[proxies]]\nname = \"s\"\ntype = \"tcp\"\nremotePort = 6000\nlocalIP = \"127.0.0.1\"\nlocalPort = 22\n[proxies.plugin]\ntype = \"socks5\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"hopc.toml:1: auth.token: only 6 bytes; a short token is easier to guess: use at least 16, e.g. the output of: openssl rand -hex 24",
		"hopc.toml:6: proxies[0].localIP: ignored: a proxy with a [proxies.plugin] has no local service address, the plugin serves its connections; remove localIP",
		"hopc.toml:7: proxies[0].localPort: ignored: a proxy with a [proxies.plugin] has no local service port, the plugin serves its connections; remove localPort",
	}
	if got := cfg.Warnings(); !reflect.DeepEqual(got, want) {
		t.Errorf("warnings\n%q\nwant\n%q", got, want)
	}
	if p := cfg.Proxies[0]; p.LocalPort != 0 || p.LocalIP != "" || p.Plugin.Type != "socks5" {
		t.Errorf("proxy %+v: want the plugin and no local service", p)
	}
}
