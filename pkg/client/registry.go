package client

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/hopproxy/hop/pkg/bwlimit"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/drain"
	"github.com/hopproxy/hop/pkg/protocol"
)

// registry is what a client serves: its proxies and visitors as the last
// load or reload left them, and the registrar of the logged-in session.
// Reload changes it (reload.go); the session, work and the P2P owner read
// it. Its mutex is never held across network I/O.
type registry struct {
	mu       sync.Mutex
	order    []config.ProxyConfig // proxies, in file order
	proxies  map[string]*runProxy
	visitors []config.VisitorConfig // in file order
	running  map[string]*visitor    // visitors that listen, by name
	verr     map[string]string      // visitors that could not listen: why, by name
	regs     map[*node]*registrar   // the logged-in sessions', by node
	ctx      context.Context        // Run's, nil before Run
	stopped  bool                   // Run is ending: no reload applies
	gen      uint64                 // of the last runProxy made
}

// runProxy is one proxy as it runs. A changed proxy gets a new runProxy;
// the old one's connections drain for gracePeriod and close.
type runProxy struct {
	cfg     config.ProxyConfig
	gen     uint64    // tells apart the runs of one name (keys of P2P links)
	conns   drain.Set // the connections to its local service
	retired atomic.Bool
	plugin  pluginSlot     // the proxy's [proxies.plugin] handler, if it has one
	limit   *bwlimit.Limit // bandwidthLimitMode = "client"; nil for none
	health  *health        // healthCheck state; nil without one (health.go)

	healthStarted atomic.Bool
}

// init fills a new client's registry from its config.
func (r *registry) init(cfg *config.ClientConfig) {
	r.running, r.verr = map[string]*visitor{}, map[string]string{}
	r.setProxies(cfg.Proxies)
	r.visitors = cfg.Visitors
}

// setProxies makes a runProxy for every entry of ps that has none of the
// same config, and returns those replaced or gone. Callers hold mu (or own
// r alone).
func (r *registry) setProxies(ps []config.ProxyConfig) (old []*runProxy) {
	next := make(map[string]*runProxy, len(ps))
	for _, p := range ps {
		if rp := r.proxies[p.Name]; rp != nil && equalProxy(rp.cfg, p) {
			next[p.Name] = rp
			continue
		}
		r.gen++
		rp := &runProxy{cfg: p, gen: r.gen, limit: clientLimit(p)}
		if p.HealthCheck.Type != "" {
			rp.health = &health{}
		}
		next[p.Name] = rp
	}
	for n, rp := range r.proxies {
		if next[n] != rp {
			old = append(old, rp)
		}
	}
	r.proxies, r.order = next, ps
	return old
}

// proxy returns the running proxy of that name, or nil.
func (c *Client) proxy(name string) *runProxy {
	c.run.mu.Lock()
	defer c.run.mu.Unlock()
	return c.run.proxies[name]
}

// runningConfig is the config the client runs: the one it started with,
// with the proxies and visitors of the last reload.
func (c *Client) runningConfig() *config.ClientConfig {
	cfg := *c.cfg
	c.run.mu.Lock()
	cfg.Proxies, cfg.Visitors = c.run.order, c.run.visitors
	c.run.mu.Unlock()
	return &cfg
}

// attachRegistrar makes the registrar of node n's new session, with the
// proxies of the registry, and makes it one of those reloads tell.
func (c *Client) attachRegistrar(n *node, ch sender) *registrar {
	c.run.mu.Lock()
	defer c.run.mu.Unlock()
	reg := newRegistrar(ch, c.log.With("server", n.name), c.run.order, c.cfg.Reconnect.MinDelay.Duration, c.cfg.Reconnect.MaxDelay.Duration,
		func(p config.ProxyConfig, r *protocol.NewProxyResp) { c.proxyStarted(n, p, r) })
	reg.down = c.proxyDown
	reg.port, reg.samePort = c.assignedPort, c.samePort
	if c.run.regs == nil {
		c.run.regs = map[*node]*registrar{}
	}
	c.run.regs[n] = reg
	return reg
}

// detachRegistrar closes node n's session's registrar.
func (c *Client) detachRegistrar(n *node, reg *registrar) {
	c.run.mu.Lock()
	if c.run.regs[n] == reg {
		delete(c.run.regs, n)
	}
	c.run.mu.Unlock()
	reg.close()
}

// registrars returns the registrar of every logged-in session, in node
// order.
func (c *Client) registrars() []*registrar {
	c.liveMu.Lock()
	nodes := append([]*node(nil), c.nodes...)
	c.liveMu.Unlock()
	c.run.mu.Lock()
	defer c.run.mu.Unlock()
	var out []*registrar
	for _, n := range nodes {
		if r := c.run.regs[n]; r != nil {
			out = append(out, r)
		}
	}
	return out
}

// assignedPort is the remote port every node uses for proxy name
// (remotePort = 0), 0 while no node opened one.
func (c *Client) assignedPort(name string) int {
	c.portsMu.Lock()
	defer c.portsMu.Unlock()
	return c.ports[name]
}

// samePort records that a node opened port for proxy name: the first
// node to open one sets the port of every node; another port is not ok.
func (c *Client) samePort(name string, port int) (int, bool) {
	c.portsMu.Lock()
	defer c.portsMu.Unlock()
	if c.ports == nil {
		c.ports = map[string]int{}
	}
	if p, ok := c.ports[name]; ok {
		return p, p == port
	}
	c.ports[name] = port
	return port, true
}

// forgetPort drops the port of a proxy a reload removed or changed.
func (c *Client) forgetPort(name string) {
	c.portsMu.Lock()
	delete(c.ports, name)
	c.portsMu.Unlock()
}

// clientLimit returns the buckets hopc applies to p's connections: those
// of its bandwidthLimit in "client" mode, else nil.
func clientLimit(p config.ProxyConfig) *bwlimit.Limit {
	if p.Transport.LimitMode() != config.BandwidthLimitClient {
		return nil
	}
	return bwlimit.New(p.Transport.BandwidthBytes())
}
