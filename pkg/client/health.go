package client

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hopproxy/hop/pkg/config"
)

// Health checks (frp's healthCheck): hopc checks a proxy's local service
// every intervalSeconds; after maxFailed failures in a row it withdraws
// the proxy from hops (CloseProxy: it leaves its load-balancing group, or
// its port closes), and when a check passes again it registers it again.
// A withdrawn proxy stays withdrawn across reconnects until a check
// passes.

// health is the health state of one running proxy.
type health struct {
	down atomic.Bool // withdrawn after maxFailed failures
}

// proxyDown reports whether the named proxy is withdrawn by its health
// check.
func (c *Client) proxyDown(name string) bool {
	rp := c.proxy(name)
	return rp != nil && rp.health != nil && rp.health.down.Load()
}

// startHealthChecks starts the checks of the running proxies that have
// one; they end with ctx or when a reload retires their proxy. Callers
// hold reloadMu or are Run before any reload.
func (c *Client) startHealthChecks(ctx context.Context) {
	c.run.mu.Lock()
	var rps []*runProxy
	for _, rp := range c.run.proxies {
		if rp.health != nil {
			rps = append(rps, rp)
		}
	}
	c.run.mu.Unlock()
	for _, rp := range rps {
		c.startHealthCheck(ctx, rp)
	}
}

func (c *Client) startHealthCheck(ctx context.Context, rp *runProxy) {
	if rp.health == nil || !rp.healthStarted.CompareAndSwap(false, true) {
		return
	}
	c.healthWG.Add(1)
	go func() {
		defer c.healthWG.Done()
		c.healthLoop(ctx, rp)
	}()
}

func (c *Client) healthLoop(ctx context.Context, rp *runProxy) {
	hc := rp.cfg.HealthCheck
	log := c.log.With("proxy", rp.cfg.Name, "health_check", hc.Type)
	t := time.NewTicker(time.Duration(hc.IntervalSeconds) * time.Second)
	defer t.Stop()
	failed := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if rp.retired.Load() {
			return
		}
		err := checkLocal(ctx, rp.cfg)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failed++
			log.Debug("health check failed", "failed", failed, "max_failed", hc.MaxFailed, "error", err)
			if failed >= hc.MaxFailed && !rp.health.down.Load() {
				rp.health.down.Store(true)
				log.Warn("health check failed: proxy withdrawn from the server until a check passes", "failed", failed, "error", err)
				for _, reg := range c.registrars() { // every node's
					reg.withdraw(rp.cfg.Name)
				}
			}
			continue
		}
		failed = 0
		if rp.health.down.Load() {
			rp.health.down.Store(false)
			log.Info("health check passed: proxy registered again")
			for _, reg := range c.registrars() {
				reg.restore(rp.cfg.Name)
			}
		}
	}
}

// checkLocal runs one health check of p's local service.
func checkLocal(ctx context.Context, p config.ProxyConfig) error {
	hc := p.HealthCheck
	timeout := time.Duration(hc.TimeoutSeconds) * time.Second
	addr := net.JoinHostPort(p.LocalIP, strconv.Itoa(p.LocalPort))
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch hc.Type {
	case "tcp":
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	case "http":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+hc.Path, nil)
		if err != nil {
			return err
		}
		tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: timeout}).Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("GET %s: %s, want 2xx", hc.Path, resp.Status)
		}
		return nil
	}
	return fmt.Errorf("unknown health check type %q", hc.Type)
}
