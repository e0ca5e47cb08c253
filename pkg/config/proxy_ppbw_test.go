package config

import (
	"errors"
	"strings"
	"testing"
)

func TestProxyPPBWKeys(t *testing.T) {
	const head = tokenLine + "[[proxies]]\nname = \"a\"\ntype = %s\nlocalPort = 1\nremotePort = %s\n"
	proxy := func(typ, extra string) string {
		remote := "6000"
		if ProxyType(typ).IsSecret() {
			remote = "0\nsecretKey = \"0123456789\""
		}
		return strings.Replace(strings.Replace(head, "%s", `"`+typ+`"`, 1), "%s", remote, 1) + extra
	}
	cases := []struct {
		name, toml, want string
	}{
		{"v1 tcp", proxy("tcp", "transport.proxyProtocolVersion = \"v1\"\n"), ""},
		{"v2 udp", proxy("udp", "transport.proxyProtocolVersion = \"v2\"\n"), ""},
		{"v2 xtcp", proxy("xtcp", "transport.proxyProtocolVersion = \"v2\"\n"), ""},
		{"bad version", proxy("tcp", "transport.proxyProtocolVersion = \"v3\"\n"),
			`hopc.toml:7: proxies[0].transport.proxyProtocolVersion: "v3" is not a PROXY protocol version; use "v1" or "v2" (or leave it out for none)`},
		{"v1 udp", proxy("udp", "transport.proxyProtocolVersion = \"v1\"\n"),
			`hopc.toml:7: proxies[0].transport.proxyProtocolVersion: version 1 of the PROXY protocol has no UDP; use "v2", which hopc puts in front of every datagram`},
		{"sudp", proxy("sudp", "transport.proxyProtocolVersion = \"v2\"\n"),
			`proxies[0].transport.proxyProtocolVersion: sudp proxies do not take a PROXY protocol header`},
		{"limit MB", proxy("tcp", "transport.bandwidthLimit = \"1.5MB\"\ntransport.bandwidthLimitMode = \"server\"\n"), ""},
		{"limit GB", proxy("tcp", "transport.bandwidthLimit = \"1.5GB\"\n"),
			`hopc.toml:7: proxies[0].transport.bandwidthLimit: "1.5GB" has no accepted unit; write a number followed by KB or MB (1024-based, per second), e.g. "500KB" or "1MB"`},
		{"limit no number", proxy("tcp", "transport.bandwidthLimit = \"MB\"\n"), `"MB": "" is not a plain decimal number`},
		{"limit negative", proxy("tcp", "transport.bandwidthLimit = \"-1KB\"\n"), `"-1KB": "-1" is not a plain decimal number`},
		{"limit zero", proxy("tcp", "transport.bandwidthLimit = \"0KB\"\n"), `"0KB" is less than one byte per second`},
		{"bad mode", proxy("tcp", "transport.bandwidthLimitMode = \"both\"\n"),
			`hopc.toml:7: proxies[0].transport.bandwidthLimitMode: "both" is not a bandwidth limit mode; use "client" (hopc applies the limit, the default) or "server" (hops applies it)`},
		{"group", proxy("tcp", "loadBalancer.group = \"web\"\nloadBalancer.groupKey = \"k\"\n"), ""},
		{"group udp", proxy("udp", "loadBalancer.group = \"web\"\n"), "proxies[0].loadBalancer.group: only tcp, http, https and tcpmux proxies join a load-balancing group"},
		{"group bad name", proxy("tcp", "loadBalancer.group = \"a b\"\n"), `"a b" is not a valid group name`},
		{"key without group", proxy("tcp", "loadBalancer.groupKey = \"k\"\n"), "proxies[0].loadBalancer.group: missing: groupKey is set"},
		{"group port 0", strings.Replace(proxy("tcp", "loadBalancer.group = \"web\"\n"), "remotePort = 6000", "remotePort = 0", 1), "proxies[0].remotePort: 0 is not allowed in a load-balancing group"},
		{"two members in one file", proxy("tcp", "loadBalancer.group = \"web\"\n[[proxies]]\nname = \"b\"\ntype = \"tcp\"\nlocalPort = 2\nremotePort = 6000\nloadBalancer.group = \"web\"\n"), ""},
		{"member and non-member on one port", proxy("tcp", "loadBalancer.group = \"web\"\n[[proxies]]\nname = \"b\"\ntype = \"tcp\"\nlocalPort = 2\nremotePort = 6000\n"), "proxies[1].remotePort: tcp port 6000 is already used by proxies[0]"},
		{"health tcp", proxy("tcp", "healthCheck.type = \"tcp\"\n"), ""},
		{"health http no path", proxy("tcp", "healthCheck.type = \"http\"\n"), `proxies[0].healthCheck.path: "" is not a path`},
		{"health tcp path", proxy("tcp", "healthCheck.type = \"tcp\"\nhealthCheck.path = \"/\"\n"), "proxies[0].healthCheck.path: only http health checks have a path"},
		{"health bad type", proxy("tcp", "healthCheck.type = \"icmp\"\n"), `"icmp" is not a health check type; use "tcp"`},
		{"health no type", proxy("tcp", "healthCheck.maxFailed = 3\n"), "proxies[0].healthCheck.type: missing"},
		{"health zero interval", proxy("tcp", "healthCheck.type = \"tcp\"\nhealthCheck.intervalSeconds = 0\n"), "proxies[0].healthCheck.intervalSeconds: 0 is not allowed; use 1 or more"},
		{"health with plugin", strings.Replace(proxy("tcp", "healthCheck.type = \"tcp\"\n[proxies.plugin]\ntype = \"socks5\"\n"), "localPort = 1\n", "", 1), "proxies[0].healthCheck.type: a health check connects to localIP:localPort, and a proxy with a [proxies.plugin] has none"},
		{"http group without remotePort", strings.Replace(proxy("http", "customDomains = [\"a.example.com\"]\nloadBalancer.group = \"web\"\n"), "remotePort = 6000\n", "", 1), ""},
		{"health udp", proxy("udp", "healthCheck.type = \"tcp\"\n"), "udp proxies have no health check"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := ParseClient("hopc.toml", []byte(c.toml))
			if c.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, config %+v", cfg)
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q\nwant it to contain %q", err, c.want)
			}
		})
	}
}

func TestHealthCheckDefaults(t *testing.T) {
	cfg, err := ParseClient("hopc.toml", []byte(tokenLine+"[[proxies]]\nname = \"a\"\ntype = \"tcp\"\nlocalPort = 1\nremotePort = 6000\nhealthCheck.type = \"tcp\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := ProxyHealthCheck{Type: "tcp", TimeoutSeconds: DefaultHealthCheckTimeoutSeconds, MaxFailed: DefaultHealthCheckMaxFailed, IntervalSeconds: DefaultHealthCheckIntervalSeconds}
	if got := cfg.Proxies[0].HealthCheck; got != want {
		t.Fatalf("healthCheck = %+v, want %+v", got, want)
	}
}

func TestParseBandwidth(t *testing.T) {
	for s, want := range map[string]int64{"": 0, "1MB": 1 << 20, "500KB": 500 << 10, "1.5MB": 3 << 19, "0.5KB": 512} {
		got, err := ParseBandwidth(s)
		if err != nil || got != want {
			t.Errorf("ParseBandwidth(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"1GB", "1mb", "1 MB", "1e3KB", "0x10KB", "NaNMB", "InfMB", "1048577MB"} {
		if _, err := ParseBandwidth(s); err == nil {
			t.Errorf("ParseBandwidth(%q) accepted", s)
		}
	}
}
