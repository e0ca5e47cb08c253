package portmap

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Probe asks the gateway, with every method of Config.Methods at once, which
// protocols it answers and what external address it reports; it maps
// nothing. Each method is bounded by Config.Timeout (UPnP by two SSDP
// searches and two HTTP requests), so Probe returns in a few seconds even
// when nothing answers.
func (c *Client) Probe(ctx context.Context) ProbeResult {
	var res ProbeResult
	ctx, done := c.opCtx(ctx)
	defer done()
	if err := c.lock(ctx); err != nil {
		res.PCPErr, res.NATPMPErr, res.UPnPErr = err, err, err
		return res
	}
	defer c.unlock()
	if c.isClosed() {
		res.PCPErr, res.NATPMPErr, res.UPnPErr = ErrClosed, ErrClosed, ErrClosed
		return res
	}
	gw, local, err := c.gateway(ctx)
	if err != nil {
		res.PCPErr, res.NATPMPErr, res.UPnPErr = err, err, err
		return res
	}
	res.Gateway = gw
	var (
		wg              sync.WaitGroup
		pmpExt, upnpExt = res.External, res.External
	)
	for _, m := range c.cfg.Methods {
		wg.Add(1)
		switch m {
		case MethodPCP:
			go func() {
				defer wg.Done()
				res.PCPErr = c.pcpAnnounce(ctx, gw, local)
				res.PCP = res.PCPErr == nil
			}()
		case MethodNATPMP:
			go func() {
				defer wg.Done()
				pmpExt, res.NATPMPErr = c.pmpExternal(ctx, gw)
				res.NATPMP = res.NATPMPErr == nil
				if res.NATPMP {
					c.mu.Lock()
					c.pmpExt = pmpExt
					c.mu.Unlock()
				}
			}()
		case MethodUPnP:
			go func() {
				defer wg.Done()
				res.Service, upnpExt, res.UPnPErr = c.upnpProbe(ctx, gw)
				res.UPnP = res.UPnPErr == nil
			}()
		}
	}
	wg.Wait()
	res.External = pmpExt
	if !res.External.IsValid() {
		res.External = upnpExt
	}
	switch {
	case res.PCP || res.NATPMP || res.UPnP:
		c.mu.Lock()
		c.quiet = false
		c.mu.Unlock()
	case ctx.Err() == nil && unansweredAll(res.PCPErr, res.NATPMPErr, res.UPnPErr):
		// Said once, as Map says it: a later Map that finds nothing
		// either logs at debug level only.
		c.mu.Lock()
		logIt := !c.quiet
		c.quiet = true
		c.mu.Unlock()
		if logIt {
			c.log.Warn("no port-mapping gateway: UPnP, NAT-PMP and PCP unanswered",
				"methods", fmt.Sprint(c.cfg.Methods), "gateway", gw,
				"err", strings.ReplaceAll(errors.Join(res.PCPErr, res.NATPMPErr, res.UPnPErr).Error(), "\n", "; "))
		}
	}
	return res
}

// unansweredAll reports whether every non-nil error means that nothing
// answered (a method left out of Config.Methods has a nil error).
func unansweredAll(errs ...error) bool {
	for _, err := range errs {
		if err != nil && !isUnanswered(err) {
			return false
		}
	}
	return true
}
