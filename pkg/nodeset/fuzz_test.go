package nodeset

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/hopproxy/hop/pkg/config"
)

// FuzzResolve expands one endpoint, whose name (if it is one) resolves
// to the comma-separated answers. Whatever they are, Resolve must not
// panic, every node must be a distinct IP:port named after the endpoint,
// and an endpoint that pkg/config accepts in serverAddrs must never be
// rejected as malformed here.
func FuzzResolve(f *testing.F) {
	for _, s := range []struct{ ep, answers string }{
		{"10.0.0.1:7000", ""},
		{"[2001:db8::1]:7000", ""},
		{"[::ffff:10.0.0.3]:07000", ""},
		{"hops.test:7000", "10.0.0.3,10.0.0.1,10.0.0.3"},
		{"hops.test:7000", "2001:db8::2,10.0.0.20,::ffff:10.0.0.10"},
		{"hops.test:7000", "2001:db8::2,2001:db8::1"},
		{"hops.test:7000", "fe80::1%eth0"},
		{"hops.test:7000", "not-an-ip"},
		{"hops.test:7000", ""},
		{"hops.test", "10.0.0.1"},
		{"hops.test:0", "10.0.0.1"},
		{":7000", "10.0.0.1"},
		{"[hops.test]:7000", "10.0.0.1"},
	} {
		f.Add(s.ep, s.answers)
	}
	f.Fuzz(func(t *testing.T, ep, answers string) {
		r := newFake()
		if host, _, err := net.SplitHostPort(ep); err == nil && answers != "" {
			r.set(host, strings.Split(answers, ",")...)
		}
		nodes, err := Resolve(t.Context(), Config{Endpoints: []string{ep}, Resolver: r})
		seen := make(map[string]bool)
		for _, n := range nodes {
			if n.Name != ep {
				t.Errorf("node %v: Name is not the endpoint %q", n, ep)
			}
			ap, perr := netip.ParseAddrPort(n.Addr)
			if perr != nil || ap.Port() == 0 || ap.Addr().Is4In6() {
				t.Errorf("node %v: Addr is not a plain IP:port with a port 1-65535 (%v)", n, perr)
			}
			if seen[n.Addr] {
				t.Errorf("node %v twice", n)
			}
			seen[n.Addr] = true
		}
		if err == nil && len(nodes) == 0 {
			t.Errorf("no nodes and no error for %q", ep)
		}

		cfg := config.DefaultClient()
		cfg.Auth.Token = "0123456789abcdef"
		cfg.ServerAddrs = []string{ep}
		if cfg.Validate() == nil && errors.Is(err, ErrEndpoint) {
			t.Errorf("pkg/config accepts serverAddrs = [%s], but Resolve rejects it: %v", strconv.Quote(ep), err)
		}
	})
}
