package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/idletimeout"
	"github.com/hopproxy/hop/pkg/xtcp"
	"github.com/hopproxy/hop/pkg/xtcp/nat"
)

// P2P keepalive "auto" (issue 12): the keepalive interval of direct UDP
// paths follows how long this host's NAT keeps an idle UDP mapping.
//
// One learner serves the whole client, since every P2P socket of this host
// goes out through the same NAT: an idletimeout.Runner whose probes are
// nat.LifetimeProber's, fresh UDP sockets asking hops' STUN server
// (serverAddr:serverPort, as for NAT discovery) for an answer after a
// silence. No live path is ever held silent to find out. The runner starts
// with the first direct UDP path of an auto visitor or of an owner link and
// runs until the client stops, so that a later path finds the interval
// already learnt.
//
// Every registered link gets the interval the learner picks, clamped to
// at most half its keepalive timeout (the timeout stays as configured: a
// lost keepalive then still leaves time for the ones sent every quarter
// timeout after a quiet interval, see pkg/xtcp), and to at least
// p2pMinInterval. Until something is learnt the learner's Start applies
// (2s, safe behind a 5s NAT).

const (
	// p2pMinInterval is the shortest interval auto uses.
	p2pMinInterval = time.Second
	// p2pMaxInterval bounds what the learner probes for: the interval
	// never needs to exceed the longest keepalive timeout / 2 in use, and
	// RESPOND-AFTER allows up to 10 minutes of silence.
	p2pMaxInterval = 4 * time.Minute
)

// p2pKeepalive is the client's learner of the UDP mapping lifetime and
// the links that follow it.
type p2pKeepalive struct {
	mu        sync.Mutex
	ctx       context.Context // Client.Run's; nil before Run
	log       *slog.Logger
	server    func(context.Context) (netip.AddrPort, error)
	maxTO     time.Duration      // the longest keepalive timeout of a link that may register
	probe     idletimeout.Prober // nil: nat.LifetimeProber's (tests swap it)
	runner    *idletimeout.Runner
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	links     map[*xtcp.Link]time.Duration // registered links → their keepalive timeout
	res       idletimeout.Result           // the learner's last
	learnt    bool                         // res came from the learner
	fallback  bool                         // the server cannot answer late: fixed interval
	used      time.Duration                // the interval last logged
	usedFinal bool                         // ... and the search had converged then
}

// init readies p for Client.Run: ctx bounds the learner's life; maxTimeout
// is the longest keepalive timeout of the links that will register (it
// bounds what the learner probes for).
func (p *p2pKeepalive) init(ctx context.Context, log *slog.Logger, server func(context.Context) (netip.AddrPort, error), maxTimeout time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ctx, p.log, p.server, p.maxTO = ctx, log, server, maxTimeout
	if p.links == nil {
		p.links = map[*xtcp.Link]time.Duration{}
	}
}

// stop ends the learner and waits for it. Safe to call more than once.
func (p *p2pKeepalive) stop() {
	p.mu.Lock()
	cancel := p.cancel
	p.cancel, p.runner = nil, nil
	p.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	p.wg.Wait()
}

// runnerConfig is the learner's configuration: Max is the longest
// interval any link may use (half its keepalive timeout), at most
// p2pMaxInterval.
func runnerConfig(maxTimeout time.Duration) idletimeout.Config {
	return idletimeout.Config{Min: p2pMinInterval, Max: min(max(maxTimeout/2, p2pMinInterval), p2pMaxInterval),
		Start: config.AutoP2PKeepaliveStart}
}

// register makes link follow the learnt interval from now on, with
// timeout its paths' keepalive timeout, and starts the learner if it does
// not run. The returned func unregisters it.
func (p *p2pKeepalive) register(link *xtcp.Link, timeout time.Duration) (unregister func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx == nil || p.ctx.Err() != nil {
		return func() {}
	}
	p.links[link] = timeout
	if p.runner == nil && !p.fallback {
		p.start(timeout)
	}
	p.apply(link, timeout)
	return func() {
		p.mu.Lock()
		delete(p.links, link)
		p.mu.Unlock()
	}
}

// start runs a learner; p.mu is held. Its probing bound comes from the
// longest keepalive timeout among the visitors' config and the owner's.
func (p *p2pKeepalive) start(timeout time.Duration) {
	maxTimeout := max(timeout, p.maxTO, xtcp.DefaultKeepaliveTimeout)
	inner := p.probe
	if inner == nil {
		inner = (&nat.LifetimeProber{Server: p.server}).Probe
	}
	probe := func(ctx context.Context, silence time.Duration) (bool, error) {
		ok, err := inner(ctx, silence)
		if errors.Is(err, nat.ErrNoDelaySupport) {
			p.giveUp(err)
		}
		return ok, err
	}
	ctx, cancel := context.WithCancel(p.ctx)
	r := idletimeout.NewRunner(runnerConfig(maxTimeout), probe, p.changed)
	p.runner, p.cancel, p.res = r, cancel, r.Result()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		r.Run(ctx)
	}()
}

// giveUp stops learning for good: hops cannot answer late (an older
// server), so links use the fixed default interval.
func (p *p2pKeepalive) giveUp(cause error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fallback {
		return
	}
	p.fallback = true
	if p.cancel != nil {
		p.cancel() // Run returns; stop waits for it
	}
	p.runner = nil
	p.log.Warn("P2P keepalive auto: cannot learn the UDP mapping lifetime; using the default interval",
		"interval", config.DefaultP2PKeepaliveInterval, "cause", cause)
	for l, to := range p.links {
		p.apply(l, to)
	}
}

// pathLost tells the learner a direct UDP path died of silence: the NAT
// may have got shorter, so it learns again.
func (p *p2pKeepalive) pathLost() {
	p.mu.Lock()
	r := p.runner
	p.mu.Unlock()
	if r != nil {
		r.Relearn()
	}
}

// changed is the runner's onChange: every link gets the new interval, and
// a change of the interval used is logged once.
func (p *p2pKeepalive) changed(res idletimeout.Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fallback {
		return
	}
	p.res, p.learnt = res, res.Survived > 0
	for l, to := range p.links {
		p.apply(l, to)
	}
	// Logged when the interval used changes, and once more when the
	// search has converged (what the NAT forgets is known then).
	used := clampInterval(res.Interval, xtcp.DefaultKeepaliveTimeout)
	final := res.Converged && !p.usedFinal
	if res.Survived == 0 || (used == p.used && !final) {
		return
	}
	p.used, p.usedFinal = used, res.Converged
	p.log.Info(p2pLearnedLine(res, used), "converged", res.Converged, "probes", res.Probes,
		"clamped", used < res.Interval)
}

// p2pLearnedLine is the info line for a learnt interval.
func p2pLearnedLine(res idletimeout.Result, used time.Duration) string {
	if res.Failed > 0 {
		return fmt.Sprintf("P2P keepalive interval learned: path forgets idle UDP after ~%s; using %s", secs(res.Failed), secs(used))
	}
	return fmt.Sprintf("P2P keepalive interval learned: path keeps idle UDP at least %s; using %s", secs(res.Survived), secs(used))
}

func secs(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }

// interval is the interval a link with keepalive timeout timeout uses
// now; p.mu is held.
func (p *p2pKeepalive) interval(timeout time.Duration) time.Duration {
	if p.fallback {
		return clampInterval(config.DefaultP2PKeepaliveInterval, timeout)
	}
	iv := p.res.Interval
	if iv <= 0 {
		iv = idletimeout.DefaultStart
	}
	return clampInterval(iv, timeout)
}

// apply sets link's interval; p.mu is held.
func (p *p2pKeepalive) apply(link *xtcp.Link, timeout time.Duration) {
	if err := link.SetKeepaliveInterval(p.interval(timeout)); err != nil {
		p.log.Info("P2P keepalive interval not applied", "error", err)
	}
}

// clampInterval keeps iv at most half the keepalive timeout (which stays
// as configured) and at least p2pMinInterval, or below the timeout when
// the timeout is tiny.
func clampInterval(iv, timeout time.Duration) time.Duration {
	iv = min(iv, timeout/2)
	if iv < p2pMinInterval {
		iv = min(p2pMinInterval, timeout/2)
	}
	return max(iv, time.Millisecond)
}

// converged reports whether the learner has converged.
func (p *p2pKeepalive) converged() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.res.Converged
}

// p2pKeepaliveState is what the client knows of the UDP mapping lifetime (see
// VisitorStatus).
type p2pKeepaliveState struct {
	// Interval is the keepalive interval direct UDP paths of auto
	// visitors use now (for the default keepalive timeout).
	Interval time.Duration
	// Learnt is false while the start interval is used.
	Learnt bool
	// Survived and Failed are the learner's: the longest silence the NAT
	// kept a mapping for, and the shortest it forgot one after (0: none
	// yet).
	Survived, Failed time.Duration
	// Fallback: hops cannot answer late, so the default interval is used.
	Fallback bool
}

// status reports what p knows for a link with keepalive timeout timeout,
// ok false when no learner ever ran.
func (p *p2pKeepalive) status(timeout time.Duration) (p2pKeepaliveState, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.runner == nil && !p.fallback && !p.learnt {
		return p2pKeepaliveState{}, false
	}
	return p2pKeepaliveState{Interval: p.interval(timeout), Learnt: p.learnt, Survived: p.res.Survived,
		Failed: p.res.Failed, Fallback: p.fallback}, true
}

// maxP2PKeepaliveTimeout is the longest keepalive timeout of the auto
// visitors in the config, and the owner's.
func (c *Client) maxP2PKeepaliveTimeout() time.Duration {
	to := xtcp.DefaultKeepaliveTimeout
	for _, v := range c.cfg.Visitors {
		if v.Type.IsP2P() && v.KeepaliveInterval.Auto {
			to = max(to, v.KeepaliveTimeout.Duration)
		}
	}
	return to
}

// p2pSessionInterval is the keepalive interval an xtcp session and a new
// UDP carrier of visitor config v start with: its own, or with "auto" the
// default (the session's ping while relaying) within the timeout; a
// carrier takes the learnt one when it is attached to the link.
func p2pSessionInterval(v config.VisitorConfig) time.Duration {
	if !v.KeepaliveInterval.Auto {
		return v.KeepaliveInterval.Duration
	}
	return clampInterval(config.DefaultP2PKeepaliveInterval, v.KeepaliveTimeout.Duration)
}

// keepaliveStatus is VisitorStatus.Keepalive of visitor config v.
func (c *Client) keepaliveStatus(v config.VisitorConfig) string {
	if !v.Type.IsP2P() {
		return ""
	}
	if !v.KeepaliveInterval.Auto {
		return secs(v.KeepaliveInterval.Duration)
	}
	st, ok := c.p2pka.status(v.KeepaliveTimeout.Duration)
	switch {
	case !ok:
		return "auto (learns with the first direct UDP path)"
	case st.Fallback:
		return fmt.Sprintf("auto %s (hops cannot answer late: default)", secs(st.Interval))
	case !st.Learnt:
		return fmt.Sprintf("auto %s (learning)", secs(st.Interval))
	case st.Failed > 0:
		return fmt.Sprintf("auto %s (NAT forgets idle UDP after ~%s)", secs(st.Interval), secs(st.Failed))
	}
	return fmt.Sprintf("auto %s (NAT keeps idle UDP at least %s)", secs(st.Interval), secs(st.Survived))
}
