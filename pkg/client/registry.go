package client

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/hopproxy/hop/pkg/bwlimit"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/drain"
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
	reg      *registrar             // the logged-in session's, nil between sessions
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

// attachRegistrar makes the registrar of a new session, with the proxies
// of the registry, and makes it the one reloads tell.
func (c *Client) attachRegistrar(ch sender) *registrar {
	c.run.mu.Lock()
	defer c.run.mu.Unlock()
	reg := newRegistrar(ch, c.log, c.run.order, c.cfg.Reconnect.MinDelay.Duration, c.cfg.Reconnect.MaxDelay.Duration, c.proxyStarted)
	reg.down = c.proxyDown
	c.run.reg = reg
	return reg
}

// detachRegistrar closes a session's registrar.
func (c *Client) detachRegistrar(reg *registrar) {
	c.run.mu.Lock()
	if c.run.reg == reg {
		c.run.reg = nil
	}
	c.run.mu.Unlock()
	reg.close()
}

// clientLimit returns the buckets hopc applies to p's connections: those
// of its bandwidthLimit in "client" mode, else nil.
func clientLimit(p config.ProxyConfig) *bwlimit.Limit {
	if p.Transport.LimitMode() != config.BandwidthLimitClient {
		return nil
	}
	return bwlimit.New(p.Transport.BandwidthBytes())
}
