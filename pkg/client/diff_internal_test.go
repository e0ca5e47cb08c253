package client

import (
	"slices"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/config"
)

func diffProxy(name string, local, remote int) config.ProxyConfig {
	p := config.DefaultProxy(config.ProxyTCP)
	p.Name, p.LocalPort, p.RemotePort = name, local, remote
	return p
}

func diffVisitor(name string, port int) config.VisitorConfig {
	v := config.DefaultVisitor(config.ProxySTCP)
	v.Name, v.ServerName, v.SecretKey, v.BindPort = name, "s", "k", port
	return v
}

// TestDiffConfigs: entries are matched by name, any difference in an
// entry makes it changed, and every other key that differs is named,
// dotted, for a restart.
func TestDiffConfigs(t *testing.T) {
	base := config.DefaultClient()
	base.Auth.Token = "t"
	base.Proxies = []config.ProxyConfig{diffProxy("a", 1, 6001), diffProxy("c", 3, 6003), diffProxy("d", 4, 6004)}
	base.Visitors = []config.VisitorConfig{diffVisitor("v1", 9001), diffVisitor("v2", 9002)}

	for _, tc := range []struct {
		name  string
		edit  func(*config.ClientConfig)
		want  ReloadResult
		diffs bool
	}{
		{"same", func(*config.ClientConfig) {}, ReloadResult{Unchanged: 5}, false},
		{"add remove change", func(c *config.ClientConfig) {
			c.Proxies = []config.ProxyConfig{diffProxy("b", 2, 6002), diffProxy("a", 1, 6001), diffProxy("d", 40, 6004)}
			c.Visitors = []config.VisitorConfig{diffVisitor("v1", 9001), diffVisitor("v3", 9003)}
		}, ReloadResult{Added: []string{"proxy:b", "visitor:v3"}, Removed: []string{"proxy:c", "visitor:v2"}, Changed: []string{"proxy:d"}, Unchanged: 2}, true},
		{"allowUsers and idleTimeout are entry changes", func(c *config.ClientConfig) {
			c.Proxies = slices.Clone(c.Proxies)
			c.Proxies[0].AllowUsers = []string{"x"}
			c.Visitors = slices.Clone(c.Visitors)
			c.Visitors[1].IdleTimeout = config.Dur(time.Hour)
		}, ReloadResult{Changed: []string{"proxy:a", "visitor:v2"}, Unchanged: 3}, true},
		{"keys that need a restart", func(c *config.ClientConfig) {
			c.ServerPort++
			c.Auth.Token = "other"
			c.Transport.TLS.ServerName = "hop.example"
			c.Log.To = "/tmp/x.log"
			c.GracePeriod = config.Dur(time.Minute)
		}, ReloadResult{Unchanged: 5, NeedsRestart: []string{"serverPort", "auth.token", "gracePeriod", "transport.tls.serverName", "log.to"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := base
			tc.edit(&n)
			got := diffConfigs(&base, &n).result()
			if !eqStrings(got.Added, tc.want.Added) || !eqStrings(got.Removed, tc.want.Removed) || !eqStrings(got.Changed, tc.want.Changed) ||
				got.Unchanged != tc.want.Unchanged || !eqStrings(got.NeedsRestart, tc.want.NeedsRestart) {
				t.Fatalf("diff = %+v, want %+v", got, tc.want)
			}
			back := diffConfigs(&n, &base).result() // the reverse diff swaps added and removed
			if !eqStrings(back.Added, got.Removed) || !eqStrings(back.Removed, got.Added) || back.Unchanged != got.Unchanged {
				t.Fatalf("reverse diff = %+v of %+v", back, got)
			}
		})
	}
}

func eqStrings(a, b []string) bool { return len(a) == len(b) && (len(a) == 0 || slices.Equal(a, b)) }

// TestRegistryKeepsUnchangedRuns: a reload keeps the runProxy of an equal
// entry (its connections with it) and replaces a changed one.
func TestRegistryKeepsUnchangedRuns(t *testing.T) {
	var r registry
	r.init(&config.ClientConfig{Proxies: []config.ProxyConfig{diffProxy("a", 1, 0), diffProxy("d", 4, 0), diffProxy("c", 3, 0)}})
	a, d, c := r.proxies["a"], r.proxies["d"], r.proxies["c"]
	old := r.setProxies([]config.ProxyConfig{diffProxy("a", 1, 0), diffProxy("d", 40, 0), diffProxy("b", 2, 0)})
	if r.proxies["a"] != a {
		t.Fatal("the unchanged proxy got a new run")
	}
	if r.proxies["d"] == d || r.proxies["d"].gen == d.gen || r.proxies["d"].cfg.LocalPort != 40 {
		t.Fatalf("the changed proxy kept its run: %+v", r.proxies["d"])
	}
	if r.proxies["b"] == nil || r.proxies["c"] != nil {
		t.Fatalf("proxies %v", r.proxies)
	}
	if len(old) != 2 || !slices.Contains(old, d) || !slices.Contains(old, c) {
		t.Fatalf("replaced %v, want d and c", old)
	}
}
