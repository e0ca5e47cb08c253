package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

var vhostServerCases = []errorCase{
	{name: "vhost ports", toml: tokenLine + "vhostHTTPPort = 8080\nvhostHTTPSPort = 8443\nsubDomainHost = \"example.com\"\nvhostHTTPTimeout = \"30s\"\n"},
	{name: "vhost port is bindPort", toml: tokenLine + "vhostHTTPPort = 7000\n"},
	{name: "vhost ports equal", toml: tokenLine + "vhostHTTPPort = 8080\nvhostHTTPSPort = 8080\n", want: "hops.toml:3: vhostHTTPSPort: 8080 is also vhostHTTPPort (line 2); they need a port each (only bindPort may be shared, as hops tells hopc's TLS, https SNI and plain HTTP apart by their first bytes there)"},
	{name: "vhost port range", toml: tokenLine + "vhostHTTPSPort = 70000\n", want: "hops.toml:2: vhostHTTPSPort: 70000 is out of range; use 0-65535 (0 turns it off)"},
	{name: "vhost timeout in frp's seconds", toml: tokenLine + "vhostHTTPTimeout = 60\n", want: "hops.toml:2: vhostHTTPTimeout: 60 is a bare number; durations are strings with a unit: write \"60s\" (units: ms, s, m, h)"},
	{name: "subDomainHost wildcard", toml: tokenLine + "subDomainHost = \"*.example.com\"\n", want: "hops.toml:2: subDomainHost: \"*.example.com\" is a wildcard; write the domain itself, e.g. \"example.com\": a proxy's subdomain goes in front of it"},
	{name: "custom404Page missing", toml: tokenLine + "custom404Page = \"/nonexistent/404.html\"\n", want: "hops.toml:2: custom404Page: cannot read 404 page \"/nonexistent/404.html\": no such file or directory; check the path (relative paths start at the working directory)"},
}

var vhostClientCases = []errorCase{
	{name: "http proxy", toml: tokenLine + "[[proxies]]\nname = \"web\"\ntype = \"http\"\nlocalPort = 80\ncustomDomains = [\"a.example.com\", \"*.b.example.com\"]\nlocations = [\"/\", \"/api\"]\nhttpUser = \"u\"\nhttpPassword = \"p\"\nrequestHeaders.set.X-A = \"1\"\nresponseHeaders.set.X-B = \"2\"\n"},
	{name: "https proxy", toml: tokenLine + "[[proxies]]\nname = \"web\"\ntype = \"https\"\nlocalPort = 443\nsubdomain = \"web\"\n"},
	{name: "http without domain", toml: tokenLine + "[[proxies]]\nname = \"web\"\ntype = \"http\"\nlocalPort = 80\n", want: "hopc.toml:2: proxies[0].customDomains: an http proxy needs a domain: set customDomains = [\"app.example.com\"], or subdomain = \"app\" when hops has subDomainHost"},
	{name: "http bad keys", toml: tokenLine + "[[proxies]]\nname = \"web\"\ntype = \"http\"\nlocalPort = 80\nremotePort = 80\ncustomDomains = [\"A.example.com\", \"a.example.com:80\", \"a b\"]\nsubdomain = \"a.b\"\nlocations = [\"api\"]\nhttpUser = \"u\"\nrequestHeaders.set.\"X A\" = \"1\"\n",
		want: "hopc.toml:6: proxies[0].remotePort: http proxies share the server's vhostHTTPPort and are routed by domain: remove remotePort\n" +
			"hopc.toml:7: proxies[0].customDomains[0]: \"A.example.com\" has upper-case letters; host names are matched in lower case: write \"a.example.com\"\n" +
			"hopc.toml:7: proxies[0].customDomains[1]: \"a.example.com:80\" has a port; write only the host name (the port is the server's vhostHTTPPort or vhostHTTPSPort)\n" +
			"hopc.toml:7: proxies[0].customDomains[2]: \"a b\" is not a host name; use letters, digits, - and . (e.g. \"app.example.com\"), optionally starting with \"*.\" for every name below a domain\n" +
			"hopc.toml:8: proxies[0].subdomain: \"a.b\" is not a subdomain; write one label of lower-case letters, digits and - (e.g. \"app\", served as app.<subDomainHost of hops>), without dots or \"*\"\n" +
			"hopc.toml:9: proxies[0].locations[0]: \"api\" is not a URL path prefix; write one starting with \"/\", without query or spaces, e.g. \"/api\"\n" +
			"hopc.toml:10: proxies[0].httpUser: httpUser and httpPassword go together: set both to ask for basic authentication, or neither\n" +
			"hopc.toml:11: proxies[0].requestHeaders.set.X A: \"X A\" is not a header name; use letters, digits and - (e.g. X-From)"},
	{name: "http keys on https", toml: tokenLine + "[[proxies]]\nname = \"web\"\ntype = \"https\"\nlocalPort = 443\ncustomDomains = [\"a.example.com\"]\nlocations = [\"/\"]\n", want: "hopc.toml:7: proxies[0].locations: only http proxies take locations: an https proxy is routed by the TLS SNI and hops never sees its requests; remove it"},
	{name: "same domain twice", toml: tokenLine + "[[proxies]]\nname = \"a\"\ntype = \"http\"\nlocalPort = 80\ncustomDomains = [\"a.example.com\"]\n[[proxies]]\nname = \"b\"\ntype = \"http\"\nlocalPort = 81\ncustomDomains = [\"a.example.com\"]\nlocations = [\"/x\", \"/\"]\n[[proxies]]\nname = \"c\"\ntype = \"https\"\nlocalPort = 443\ncustomDomains = [\"a.example.com\"]\n",
		want: "hopc.toml:11: proxies[1].customDomains: a.example.com location \"/\" is also routed to proxies[0] (line 2); hops would refuse this proxy: give it another domain or location, or put both in one loadBalancer.group"},
	{name: "one domain in a group", toml: tokenLine + "[[proxies]]\nname = \"a\"\ntype = \"http\"\nlocalPort = 80\ncustomDomains = [\"a.example.com\"]\nloadBalancer.group = \"web\"\nloadBalancer.groupKey = \"k\"\n[[proxies]]\nname = \"b\"\ntype = \"http\"\nlocalPort = 81\ncustomDomains = [\"a.example.com\"]\nloadBalancer.group = \"web\"\nloadBalancer.groupKey = \"k\"\n"},
	{name: "one domain, two groups", toml: tokenLine + "[[proxies]]\nname = \"a\"\ntype = \"https\"\nlocalPort = 443\ncustomDomains = [\"a.example.com\"]\nloadBalancer.group = \"web\"\n[[proxies]]\nname = \"b\"\ntype = \"https\"\nlocalPort = 444\ncustomDomains = [\"a.example.com\"]\nloadBalancer.group = \"other\"\n",
		want: "hopc.toml:12: proxies[1].customDomains: a.example.com location \"/\" is also routed to proxies[0] (line 2); hops would refuse this proxy: give it another domain or location, or put both in one loadBalancer.group"},
	{name: "http keys on tcp", toml: tokenLine + "[[proxies]]\nname = \"ssh\"\ntype = \"tcp\"\nlocalPort = 22\nremotePort = 6000\nhttpUser = \"u\"\n", want: "hopc.toml:7: proxies[0].httpUser: only http proxies take httpUser; remove it from this tcp proxy"},
}

func TestVhostServerConfig(t *testing.T) {
	for _, c := range vhostServerCases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseServer("hops.toml", []byte(c.toml))
			checkErr(t, "hops.toml", err, c.want)
		})
	}
}

func TestVhostClientConfig(t *testing.T) {
	for _, c := range vhostClientCases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseClient("hopc.toml", []byte(c.toml))
			checkErr(t, "hopc.toml", err, c.want)
		})
	}
}

// TestVhostMarshalRoundTrip: the vhost keys written back as TOML parse
// to the same config.
func TestVhostMarshalRoundTrip(t *testing.T) {
	page := filepath.Join(t.TempDir(), "404.html")
	if err := os.WriteFile(page, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := DefaultServer()
	srv.Auth.Token = "t"
	srv.VhostHTTPPort, srv.VhostHTTPSPort, srv.SubDomainHost = 8080, 8443, "example.com"
	srv.VhostHTTPTimeout, srv.Custom404Page = d("90s"), page
	b, err := toml.Marshal(srv)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseServer("marshaled", b)
	if err != nil || !reflect.DeepEqual(values(back), srv) {
		t.Errorf("server round trip: %v\n%s", err, b)
	}

	cli := DefaultClient()
	cli.Auth.Token = "t"
	web, tls := DefaultProxy(ProxyHTTP), DefaultProxy(ProxyHTTPS)
	web.Name, web.LocalPort, web.CustomDomains, web.Subdomain = "web", 80, []string{"a.example.com", "*.b.example.com"}, "web"
	web.Locations, web.HTTPUser, web.HTTPPassword, web.RouteByHTTPUser, web.HostHeaderRewrite = []string{"/", "/api"}, "u", "p", "u", "local"
	web.RequestHeaders.Set = map[string]string{"X-A": "1", "X-B": "two words"}
	web.ResponseHeaders.Set = map[string]string{"X-C": "3"}
	tls.Name, tls.LocalPort, tls.CustomDomains = "tls", 443, []string{"s.example.com"}
	cli.Proxies = []ProxyConfig{web, tls}
	if err := cli.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err = toml.Marshal(cli)
	if err != nil {
		t.Fatal(err)
	}
	cback, err := ParseClient("marshaled", b)
	if err != nil || !reflect.DeepEqual(values(cback), cli) {
		t.Errorf("client round trip: %v\n%s", err, b)
	}
}
