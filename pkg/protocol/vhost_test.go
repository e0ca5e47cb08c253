package protocol

import (
	"strings"
	"testing"
)

func TestNewProxyVhostValidate(t *testing.T) {
	for _, c := range []struct {
		m    NewProxy
		want string // "" for valid
	}{
		{NewProxy{Name: "w", ProxyType: ProxyHTTP, CustomDomains: []string{"a.example.com"}}, ""},
		{NewProxy{Name: "w", ProxyType: ProxyHTTPS, Subdomain: "w"}, ""},
		{NewProxy{Name: "w", ProxyType: ProxyHTTP}, "needs customDomains or a subdomain"},
		{NewProxy{Name: "w", ProxyType: ProxyHTTP, CustomDomains: []string{"A.example.com"}}, "lower-case"},
		{NewProxy{Name: "w", ProxyType: ProxyHTTP, CustomDomains: []string{"a..b"}}, "not a host name"},
		{NewProxy{Name: "w", ProxyType: ProxyHTTP, Subdomain: "a.b"}, "one label"},
		{NewProxy{Name: "w", ProxyType: ProxyHTTP, CustomDomains: []string{"a.b"}, RemotePort: 80}, "no remote port"},
		{NewProxy{Name: "w", ProxyType: ProxyHTTPS, CustomDomains: []string{"a.b"}, Locations: []string{"/"}}, "no locations"},
		{NewProxy{Name: "w", ProxyType: ProxyTCP, CustomDomains: []string{"a.b"}}, "no domains"},
		{NewProxy{Name: "w", ProxyType: ProxyHTTP, CustomDomains: []string{"a.b"}, Locations: []string{"api"}}, "not a path prefix"},
		{NewProxy{Name: "w", ProxyType: ProxyHTTP, CustomDomains: []string{"a.b"}, RequestHeaders: map[string]string{"X": "a\r\nB: c"}}, "one-line"},
		{NewProxy{Name: "w", ProxyType: ProxyHTTP, CustomDomains: make([]string, MaxDomains+1)}, "at most"},
		{NewProxy{Name: "w", ProxyType: ProxyTCPMux, Multiplexer: "httpconnect", CustomDomains: []string{"t.example.com"}, HTTPUser: "u", HTTPPassword: "p", RouteByHTTPUser: "u"}, ""},
		{NewProxy{Name: "w", ProxyType: ProxyTCPMux, CustomDomains: []string{"t.example.com"}}, "is not \"httpconnect\""},
		{NewProxy{Name: "w", ProxyType: ProxyTCPMux, Multiplexer: "httpconnect", CustomDomains: []string{"t.example.com"}, Locations: []string{"/"}}, "no locations"},
		{NewProxy{Name: "w", ProxyType: ProxyTCP, Multiplexer: "httpconnect"}, "no multiplexer"},
		{NewProxy{Name: "w", ProxyType: ProxyHTTPS, CustomDomains: []string{"a.b"}, HTTPUser: "u"}, "no locations"},
	} {
		err := c.m.validate()
		if (err == nil) != (c.want == "") || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.m, err, c.want)
		}
	}
}
