package client

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/portmap"
	"github.com/hopproxy/hop/pkg/protocol"
)

// portMapper is what P2P attempts need of a port-mapping client
// (*portmap.Client); tests swap in a fake.
type portMapper interface {
	Map(ctx context.Context, proto string, internalPort uint16) (portmap.Mapping, error)
	Peer(ctx context.Context, proto string, internalPort uint16, remote netip.AddrPort) (portmap.Mapping, error)
	Unmap(ctx context.Context, proto string, internalPort uint16, remote netip.AddrPort) error
	Close() error
}

// Timing of the port mapping of P2P sockets.
const (
	// mapWait is how long an attempt waits for its socket's mapping; a
	// gateway on the LAN answers PCP or NAT-PMP in a few milliseconds.
	mapWait = 500 * time.Millisecond
	// mapWaitUnknown replaces mapWait until a gateway has answered once
	// (a mapping, or the probe at start): on a network without one, the
	// first attempts lose at most this on each side.
	mapWaitUnknown = 200 * time.Millisecond
	// mapBound bounds one Map in the background (every method, both IGD
	// versions, with portmap's 2 s steps), so that a silent gateway is
	// recognised even though no attempt waits that long.
	mapBound = 12 * time.Second
	// mapLifetime is the lifetime asked for each mapping. Mappings are
	// deleted when their attempt's socket closes and on exit; a crashed
	// hopc leaves them at most this long.
	mapLifetime = 20 * time.Minute
	// After no gateway answered, no attempt asks for noGatewayMin,
	// doubling up to noGatewayMax while the gateway stays silent.
	noGatewayMin = 30 * time.Second
	noGatewayMax = 10 * time.Minute
)

// p2pMapper asks the gateway to forward a UDP port to each P2P attempt's
// socket and turns the mapping into candidates. It remembers that no
// gateway answered, so that attempts then neither wait nor ask (pkg/portmap
// logs that once), and asks again after a backoff.
type p2pMapper struct {
	pm  portMapper
	log *slog.Logger

	ctx    context.Context // ends on close: bounds the background Maps
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	skipUntil time.Time     // no gateway answered: no Map before this
	skipFor   time.Duration // the current backoff
	answered  bool          // a gateway has answered: worth waiting mapWait for
	pcp       pcpState      // whether the gateway speaks PCP (for keepFlow)
	closed    bool
}

// pcpState is what the mapper knows of the gateway's PCP.
type pcpState int

const (
	pcpUnknown pcpState = iota
	pcpYes
	pcpNo
)

// newP2PMapper returns the mapper of a client with xtcp/xudp proxies or
// visitors and p2p.portMapping on, or nil. The gateway is the default
// route's of the network namespace hopc runs in: hopc is one process, so
// every thread of it (and every goroutine of portmap) reads the same
// routing table.
func newP2PMapper(cfg *config.ClientConfig, log *slog.Logger) *p2pMapper {
	if !cfg.P2P.PortMapping || !usesP2P(cfg) {
		return nil
	}
	log = log.With("component", "portmap")
	pm, err := portmap.New(portmap.Config{Logger: log, Lifetime: mapLifetime})
	if err != nil {
		log.Warn("port mapping off", "error", err)
		return nil
	}
	return newMapperWith(pm, log)
}

// prober is the part of *portmap.Client that learn uses.
type prober interface {
	Probe(ctx context.Context) portmap.ProbeResult
}

// learn asks, in the background, whether a gateway answers at all, so that
// the first attempts know whether a mapping is worth waiting for. Run
// calls it once the client starts.
func (p *p2pMapper) learn() {
	if p == nil {
		return
	}
	pr, ok := p.pm.(prober)
	if !ok {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		ctx, cancel := context.WithTimeout(p.ctx, mapBound)
		defer cancel()
		r := pr.Probe(ctx)
		if p.ctx.Err() != nil {
			return
		}
		if r.PCP || r.NATPMP || r.UPnP {
			p.note(nil)
		} else {
			p.note(portmap.ErrNoGateway)
		}
		p.notePCP(r.PCP)
	}()
}

// startMapper makes a client's mapper; tests that must keep their traffic
// on loopback replace it with noMapper.
var startMapper = newP2PMapper

func noMapper(*config.ClientConfig, *slog.Logger) *p2pMapper { return nil }

func newMapperWith(pm portMapper, log *slog.Logger) *p2pMapper {
	ctx, cancel := context.WithCancel(context.Background())
	return &p2pMapper{pm: pm, log: log, ctx: ctx, cancel: cancel}
}

// usesP2P reports whether cfg has an xtcp or xudp proxy or visitor.
func usesP2P(cfg *config.ClientConfig) bool {
	for _, p := range cfg.Proxies {
		if p.Type.IsP2P() {
			return true
		}
	}
	for _, v := range cfg.Visitors {
		if v.Type.IsP2P() {
			return true
		}
	}
	return false
}

type mapResult struct {
	m   portmap.Mapping
	err error
}

// candidates asks for a UDP mapping of port, waiting at most wait, and
// returns the mapped candidates: the gateway's external address and port,
// and the mapped port on srflx's address (the public address hops saw,
// right even when the gateway is behind another NAT) when it differs.
// release deletes the mapping; call it once the socket is closed. A
// mapping that comes after wait is deleted at once: its attempt has gone
// on without it.
func (p *p2pMapper) candidates(port uint16, srflx netip.Addr, wait time.Duration) (cands []protocol.Candidate, release func()) {
	release = func() {}
	if p == nil {
		return nil, release
	}
	p.mu.Lock()
	if p.closed || time.Now().Before(p.skipUntil) {
		p.mu.Unlock()
		return nil, release
	}
	if !p.answered {
		wait = min(wait, mapWaitUnknown)
	}
	p.wg.Add(1)
	p.mu.Unlock()
	ch := make(chan mapResult, 1)
	taken := make(chan bool, 1)
	go func() {
		defer p.wg.Done()
		ctx, cancel := context.WithTimeout(p.ctx, mapBound)
		m, err := p.pm.Map(ctx, "udp", port)
		cancel()
		p.note(err)
		ch <- mapResult{m, err}
		if err != nil || !<-taken {
			p.unmap(port) // also ends portmap's background retries of a failed request
		}
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	var r mapResult
	select {
	case r = <-ch:
	case <-t.C:
		taken <- false
		p.log.Debug("no port mapping in time for the P2P attempt", "port", port, "within", wait)
		return nil, release
	}
	if r.err != nil {
		taken <- false
		if !errors.Is(r.err, portmap.ErrNoGateway) {
			p.log.Debug("port mapping failed", "port", port, "error", r.err)
		}
		return nil, release
	}
	taken <- true
	// PCP is tried first: a mapping by another method means the gateway
	// does not speak it.
	p.notePCP(r.m.Method == portmap.MethodPCP)
	var once sync.Once
	release = func() { once.Do(func() { p.unmapLater(port) }) }
	ext := r.m.External
	cands = append(cands, protocol.Candidate{Kind: "mapped", Addr: ext.String()})
	if srflx.IsValid() && srflx != ext.Addr() {
		cands = append(cands, protocol.Candidate{Kind: "mapped", Addr: netip.AddrPortFrom(srflx, ext.Port()).String()})
	}
	p.log.Debug("P2P socket mapped", "port", port, "external", ext, "method", r.m.Method, "lifetime", r.m.Lifetime)
	return cands, release
}

func (p *p2pMapper) notePCP(yes bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pcp = pcpNo
	if yes {
		p.pcp = pcpYes
	}
}

// keepFlow asks the gateway, with a PCP PEER request (RFC 6887 section
// 11), to keep its mapping of a punched UDP flow between localPort and
// remote (the peer's address on the path) for mapLifetime; the portmap
// client renews it at half the lifetime the gateway grants until release
// is called or ctx ends, then deletes it. Call it once a punch has
// succeeded on the socket bound to localPort. The request runs in the
// background: keepFlow never waits for the gateway.
//
// When the gateway is known not to speak PCP (the probe at start, or a
// mapping made with NAT-PMP or UPnP), or no gateway answers, it does
// nothing but log at debug level; a gateway that turns out not to speak
// PCP is remembered. release is safe to call more than once, and after
// the mapper closed (whose Close deletes what is left).
func (p *p2pMapper) keepFlow(ctx context.Context, localPort uint16, remote netip.AddrPort) (release func()) {
	release = func() {}
	if p == nil {
		return release
	}
	p.mu.Lock()
	skip := ""
	switch {
	case p.closed:
		skip = "mapper closed"
	case p.pcp == pcpNo:
		skip = "the gateway does not speak PCP"
	case time.Now().Before(p.skipUntil):
		skip = "no port-mapping gateway answers"
	case localPort == 0 || !remote.IsValid() || remote.Port() == 0:
		skip = "no local port or remote address"
	}
	if skip != "" {
		p.mu.Unlock()
		p.log.Debug("punched flow not kept by PCP PEER", "port", localPort, "remote", remote, "why", skip)
		return release
	}
	p.wg.Add(1)
	p.mu.Unlock()
	fctx, cancel := context.WithCancel(p.ctx)
	stop := context.AfterFunc(ctx, cancel)
	done := make(chan struct{})
	go func() {
		defer p.wg.Done()
		defer close(done)
		rctx, rcancel := context.WithTimeout(fctx, mapBound)
		m, err := p.pm.Peer(rctx, "udp", localPort, remote)
		rcancel()
		switch {
		case err == nil:
			p.notePCP(true)
			p.log.Debug("punched flow kept by PCP PEER", "port", localPort, "remote", remote,
				"external", m.External, "lifetime", m.Lifetime)
			<-fctx.Done() // the flow lives
		case errors.Is(err, portmap.ErrUnsupported), errors.Is(err, portmap.ErrNoGateway):
			p.notePCP(false)
			p.log.Debug("punched flow not kept by PCP PEER", "port", localPort, "remote", remote, "error", err)
		default:
			p.log.Debug("PCP PEER for the punched flow failed", "port", localPort, "remote", remote, "error", err)
		}
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if !closed || err != nil {
			// Also ends portmap's background retries of a failed request.
			p.unmapFlow(localPort, remote)
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			stop()
			cancel()
		})
	}
}

// unmapFlow deletes a PEER mapping (see unmap for the context).
func (p *p2pMapper) unmapFlow(port uint16, remote netip.AddrPort) {
	ctx, cancel := context.WithTimeout(context.Background(), mapBound)
	defer cancel()
	if err := p.pm.Unmap(ctx, "udp", port, remote); err != nil && !errors.Is(err, portmap.ErrBadRequest) {
		p.log.Debug("PCP PEER unmapping failed", "port", port, "remote", remote, "error", err)
	}
}

// note records whether a gateway answered.
func (p *p2pMapper) note(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err == nil:
		p.skipUntil, p.skipFor, p.answered = time.Time{}, 0, true
	case errors.Is(err, portmap.ErrNoGateway), errors.Is(err, portmap.ErrNoDefaultRoute):
		p.skipFor = min(max(2*p.skipFor, noGatewayMin), noGatewayMax)
		p.skipUntil = time.Now().Add(p.skipFor)
	}
}

// unmap deletes a mapping. Its context is not close's: an Unmap cut short
// would forget the mapping without deleting it from the gateway.
func (p *p2pMapper) unmap(port uint16) {
	ctx, cancel := context.WithTimeout(context.Background(), mapBound)
	defer cancel()
	if err := p.pm.Unmap(ctx, "udp", port, netip.AddrPort{}); err != nil && !errors.Is(err, portmap.ErrBadRequest) {
		p.log.Debug("port unmapping failed", "port", port, "error", err)
	}
}

// unmapLater deletes a mapping in the background (a gateway round trip).
func (p *p2pMapper) unmapLater(port uint16) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return // Close deletes every mapping
	}
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		p.unmap(port)
	}()
}

// close cancels the background Maps, waits for them and the Unmaps, then
// closes the
// portmap client, which deletes every mapping left. Safe on nil and twice.
func (p *p2pMapper) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	p.pm.Close()
}
