package client

import (
	"fmt"
	"slices"

	"github.com/hopproxy/hop/pkg/config"
)

// ReloadResult is what a reload did. Names are "proxy:NAME" and
// "visitor:NAME".
type ReloadResult struct {
	Added     []string `json:"added"`     // started
	Removed   []string `json:"removed"`   // stopped
	Changed   []string `json:"changed"`   // restarted with their new entry
	Unchanged int      `json:"unchanged"` // kept running, connections and all
	// NeedsRestart are the keys outside [[proxies]] and [[visitors]] whose
	// new values differ from the running ones (e.g. "serverPort",
	// "auth.token"); they apply when hopc restarts. Values are not shown.
	NeedsRestart []string `json:"needsRestart"`
}

// Reload makes the client serve the proxies and visitors of cfg, as a
// diff of the running ones: unchanged ones keep their registration,
// listeners and open connections; added ones start (a proxy is registered
// on the live session, or at the next login); removed ones stop (a proxy
// is released at the server, a visitor's port closes) and their open
// connections get gracePeriod, then close; changed ones are removed, then
// added. Keys outside the proxies and visitors are not applied: the result
// lists those that differ. Every proxy and visitor started or stopped is
// logged; the summary is the caller's to log. cfg must be valid
// (config.LoadClient); an invalid one is refused with the running config
// kept. A visitor whose port cannot be bound is logged, as at start, and
// left out (the next reload tries again). Reload may be called from any
// goroutine, before or during Run; once Run is ending it returns
// ErrStopped.
func (c *Client) Reload(cfg *config.ClientConfig) (ReloadResult, error) {
	if err := cfg.Validate(); err != nil {
		return ReloadResult{}, fmt.Errorf("reload refused, the running config stays: %w", err)
	}
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	old := c.runningConfig()
	d := diffConfigs(old, cfg)

	regs := c.registrars()
	c.run.mu.Lock()
	ctx := c.run.ctx
	if c.run.stopped || (ctx != nil && ctx.Err() != nil) {
		c.run.mu.Unlock()
		return ReloadResult{}, ErrStopped
	}
	gone := c.run.setProxies(slices.Clone(cfg.Proxies))
	c.run.visitors = slices.Clone(cfg.Visitors)
	c.run.mu.Unlock()
	for _, rp := range gone {
		c.retireProxy(rp, ctx != nil)
	}
	if ctx != nil {
		c.startHealthChecks(ctx) // of the proxies added or changed
	}

	// Proxies: every CloseProxy before any NewProxy, so that a changed
	// proxy (or a new one taking a removed one's remotePort) finds its
	// port free at the server.
	for _, n := range append(d.removeProxies, d.changeProxies...) {
		c.forgetPort(n) // a changed one may get another port
		for _, reg := range regs {
			reg.remove(n)
		}
	}
	for _, reg := range regs {
		for _, p := range cfg.Proxies {
			if contains(d.addProxies, d.changeProxies, p.Name) {
				reg.add(p)
			}
		}
	}

	if ctx != nil { // visitors listen only while Run runs
		for _, n := range append(d.removeVisitors, d.changeVisitors...) {
			c.run.mu.Lock()
			v := c.run.running[n]
			delete(c.run.running, n)
			delete(c.run.verr, n)
			c.run.mu.Unlock()
			if v != nil {
				c.retireVisitor(v)
			}
		}
		for _, vc := range cfg.Visitors {
			c.run.mu.Lock()
			_, up := c.run.running[vc.Name]
			c.run.mu.Unlock()
			if !up { // added, changed, or one whose port could not be bound before
				c.startVisitor(ctx, vc)
			}
		}
		if !usesP2P(old) && usesP2P(cfg) {
			if c.cfg.P2P.PortMapping && c.mapper == nil {
				c.log.Warn("port mapping of P2P sockets starts when hopc restarts: it had no xtcp/xudp proxy or visitor when it started")
			}
			if c.anyLive() {
				c.connWG.Add(1)
				go c.learnFiltering(ctx)
			}
		}
	}
	return d.result(), nil
}

func contains(a, b []string, s string) bool {
	for _, x := range append(a, b...) {
		if x == s {
			return true
		}
	}
	return false
}

// retireProxy ends a removed (or replaced) proxy: no new connection or
// P2P link reaches it; its open connections get gracePeriod, then close,
// and so do its P2P links. Before Run (drain false) it has none.
func (c *Client) retireProxy(rp *runProxy, drain bool) {
	rp.retired.Store(true)
	log := c.log.With("proxy", rp.cfg.Name, "type", rp.cfg.Type)
	log.Info("proxy stopped by reload")
	if !drain {
		rp.conns.Close()
		rp.plugin.close()
		return
	}
	c.connWG.Add(1)
	go func() {
		defer c.connWG.Done()
		grace := c.cfg.GracePeriod.Duration
		if n := rp.conns.Count(); n > 0 {
			log.Info("stopped proxy: draining its connections", "open", n, "grace", grace)
			if !rp.conns.WaitIdle(grace) {
				log.Info("stopped proxy: grace period over, closing its connections", "open", rp.conns.Count())
			}
		}
		rp.conns.Close()
		rp.plugin.close()
		c.links.mu.Lock()
		var ls []*ownerLink
		for _, ol := range c.links.m {
			if ol.rp == rp {
				ls = append(ls, ol)
			}
		}
		c.links.mu.Unlock()
		for _, ol := range ls {
			ol.Close()
		}
	}()
}

// retireVisitor ends a removed (or replaced) visitor: its port closes at
// once; its open connections get gracePeriod, then close with its P2P
// link.
func (c *Client) retireVisitor(v *visitor) {
	v.closePort()
	v.log.Info("visitor stopped by reload: port closed")
	c.connWG.Add(1)
	go func() {
		defer c.connWG.Done()
		grace := c.cfg.GracePeriod.Duration
		if n := v.open.Count(); n > 0 {
			v.log.Info("stopped visitor: draining its connections", "open", n, "grace", grace)
			v.open.WaitIdle(grace)
		}
		v.open.Close()
		if v.link != nil {
			v.link.close()
		}
		v.wg.Wait()
	}()
}
