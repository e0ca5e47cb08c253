package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/idle"
	"github.com/hopproxy/hop/pkg/pake"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/seal"
	"github.com/hopproxy/hop/pkg/tcppunch"
	"github.com/hopproxy/hop/pkg/xtcp"
	"github.com/hopproxy/hop/pkg/xtcp/nat"
)

// Errors of P2P attempts; match them with errors.Is.
var (
	// errP2PUnconfirmed: the other client of an attempt could not prove
	// it knows the proxy's secretKey (for this proxy and these users).
	errP2PUnconfirmed = errors.New("the other client could not prove it knows the proxy's secretKey (a different secretKey on the two sides, or an impostor)")
	// errReplayedSession: a session ID this client has used before.
	errReplayedSession = errors.New("P2P session ID used before (replayed by the server or an impostor)")
	// errTooManyOffers: the owner's caps on P2P offers in flight.
	errTooManyOffers = errors.New("too many P2P offers in flight")
)

// The offer exchange: CPace (pkg/pake) keyed by the proxy's secretKey over
// the control messages P2POffer (the visitor's share) and P2PAuth (the
// owner's share and tag; then the visitor's tag and sealed P2PInfo), then
// the owner's sealed P2PInfo in P2PAnswer. Its ISK keys the boxes and the
// attempt key of the punch and the path.
const (
	p2pChannel     = "hop p2p v1"
	infoP2PPath    = "hop p2p path v1"
	infoBoxVisitor = "hop p2p info v1 visitor"
	infoBoxOwner   = "hop p2p info v1 owner"
)

// sealInfo seals what a client reveals of itself under the ISK of the
// attempt; label says whose box it is, sessionID is bound as associated
// data.
func sealInfo(isk []byte, label, sessionID string, info *protocol.P2PInfo) ([]byte, error) {
	b, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	return seal.SealBox(pake.Key(isk, label, seal.KeySize), []byte(sessionID), b)
}

// openInfo opens the peer's box.
func openInfo(isk []byte, label, sessionID string, box []byte) (*protocol.P2PInfo, error) {
	b, err := seal.OpenBox(pake.Key(isk, label, seal.KeySize), []byte(sessionID), box)
	if err != nil {
		return nil, err
	}
	return protocol.DecodeP2PInfo(b)
}

// attemptKey is the key of the punch and of the path that follows.
func attemptKey(isk []byte) []byte { return pake.Key(isk, infoP2PPath, xtcp.KeySize) }

// hostCandidates gathers the interface addresses of a P2P socket; tests
// that must keep their traffic on loopback replace it.
var hostCandidates = xtcp.HostCandidates

// Timing of P2P attempts.
const (
	sendTimeout   = 5 * time.Second
	answerTimeout = 10 * time.Second // offer → answer, answer → go
	punchTimeout  = 6 * time.Second  // the punch itself, from the agreed start
	demandWindow  = 5 * time.Minute  // retry in the background while connections came this recently
)

// discoverOpts keep an attempt's NAT discovery short (no connection waits
// for it: they run over the relay meanwhile): the mapping only (answered
// tests return at once), each request sent up to 4 times from 50 ms
// doubling, so that a lost answer (10 % loss each way) does not leave the
// attempt without its public address; a silent test costs 750 ms. The
// filtering, whose tests wait out their timeouts behind most NATs, comes
// from learnFiltering.
var discoverOpts = nat.Options{Tries: 4, Interval: 50 * time.Millisecond, SkipFiltering: true}

// filteringTTL is how long a learnt filtering behaviour is trusted.
const filteringTTL = 30 * time.Minute

// learnFiltering runs a full NAT discovery on a socket of its own, once
// per filteringTTL, for the filtering part of the NAT class that attempts
// report. It runs after login when the client has P2P proxies or visitors.
func (c *Client) learnFiltering(ctx context.Context) {
	defer c.connWG.Done()
	c.natMu.Lock()
	fresh := !c.natAt.IsZero() && time.Since(c.natAt) < filteringTTL
	c.natMu.Unlock()
	if fresh {
		return
	}
	server, err := c.stunServer(ctx)
	if err != nil {
		return
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		return
	}
	defer conn.Close()
	rep, err := nat.Discover(ctx, conn, server, nat.Options{})
	if err != nil {
		c.log.Info("NAT discovery failed: P2P attempts will report an unknown NAT class", "error", err)
		c.natOnce.Do(func() { close(c.natDone) })
		return
	}
	_, filtering, _ := strings.Cut(rep.Class(), "/")
	if !rep.Behind() {
		filtering = "none"
	}
	c.natMu.Lock()
	c.natFiltering, c.natAt = filtering, time.Now()
	c.natMu.Unlock()
	c.natOnce.Do(func() { close(c.natDone) })
	c.log.Info("NAT behaviour", "public", rep.Mapped, "class", rep.Class(), "port_preserved", rep.PortPreserved)
}

// refine fills in the filtering of a class that lacked it, waiting up to
// d for the first learnFiltering to finish.
func (c *Client) refine(class string, d time.Duration) string {
	if !strings.HasSuffix(class, "/?F") {
		return class
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.natDone:
	case <-t.C:
	}
	c.natMu.Lock()
	f := c.natFiltering
	c.natMu.Unlock()
	if f == "" || f == "none" {
		return class
	}
	return strings.TrimSuffix(class, "?F") + f
}

// class combines an attempt's mapping with the learnt filtering.
func (c *Client) class(rep *nat.Report) string {
	if !rep.Behind() {
		return "none"
	}
	mapping, _, _ := strings.Cut(rep.Class(), "/")
	c.natMu.Lock()
	f := c.natFiltering
	c.natMu.Unlock()
	if f == "" || f == "none" {
		f = "?F"
	}
	return mapping + "/" + f
}

// stunServer is the server's STUN endpoint: UDP on its bindPort.
func (c *Client) stunServer(ctx context.Context) (netip.AddrPort, error) {
	if l := c.peekLive(); l != nil { // a node logged in to: its STUN port
		if ap, err := netip.ParseAddrPort(l.addr); err == nil {
			return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
		}
	}
	eps := c.cfg.ServerEndpoints() // not logged in (hopc nat): the first node
	if len(eps) == 0 {
		return netip.AddrPort{}, errors.New("no server address configured")
	}
	host, port, err := net.SplitHostPort(eps[0])
	if err != nil {
		return netip.AddrPort{}, err
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("server port %q: %w", port, err)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
	if err != nil || len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolve server %q: %v", host, err)
	}
	return netip.AddrPortFrom(ips[0].Unmap(), uint16(pn)), nil
}

// prepareSocket opens the UDP socket of an attempt and gathers its
// candidates: interface addresses, the public mapping the server saw, the
// port the gateway maps to the socket on request (p2p.portMapping), and
// predicted ports for NATs that allocate them in sequence. unmap deletes
// the gateway's mapping: call it once the socket is closed.
func (c *Client) prepareSocket(ctx context.Context) (conn *net.UDPConn, cands []protocol.Candidate, class string, unmap func(), err error) {
	conn, err = net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		return nil, nil, "", nil, err
	}
	port := uint16(conn.LocalAddr().(*net.UDPAddr).Port)
	hosts, _ := hostCandidates(port)
	cands = toWire(hosts)
	class = "unknown"
	var rep *nat.Report
	if server, err := c.stunServer(ctx); err == nil {
		if rep, err = nat.Discover(ctx, conn, server, discoverOpts); err == nil {
			class = c.class(rep)
		} else {
			c.log.Debug("NAT discovery failed", "error", err)
		}
	}
	var srflx netip.AddrPort
	if rep != nil && rep.Mapped.IsValid() {
		srflx = rep.Mapped
	}
	mapped, unmap := c.mapper.candidates(port, srflx.Addr(), mapWait)
	cands = gatherCandidates(cands, srflx, mapped, rep)
	return conn, cands, class, unmap, nil
}

// gatherCandidates orders a socket's candidates as they are offered:
// hosts, server-reflexive, mapped, predicted, cut to
// protocol.MaxCandidates (the predicted ones are cut first).
func gatherCandidates(hosts []protocol.Candidate, srflx netip.AddrPort, mapped []protocol.Candidate, rep *nat.Report) []protocol.Candidate {
	cands := hosts
	if srflx.IsValid() {
		cands = append(cands, protocol.Candidate{Kind: "srflx", Addr: srflx.String()})
	}
	cands = append(cands, mapped...)
	if srflx.IsValid() && rep != nil {
		for _, p := range rep.PredictPorts(4) {
			if p != srflx.Port() {
				cands = append(cands, protocol.Candidate{Kind: "predicted", Addr: netip.AddrPortFrom(srflx.Addr(), p).String()})
			}
		}
	}
	if len(cands) > protocol.MaxCandidates {
		cands = cands[:protocol.MaxCandidates]
	}
	return cands
}

func toWire(cs []xtcp.Candidate) []protocol.Candidate {
	out := make([]protocol.Candidate, 0, len(cs))
	for _, c := range cs {
		out = append(out, protocol.Candidate{Kind: c.Kind.String(), Addr: c.Addr.String()})
	}
	return out
}

// fromWire turns the peer's candidates into the order to probe them in.
func fromWire(cs []protocol.Candidate) []xtcp.Candidate {
	var out []xtcp.Candidate
	for _, w := range cs {
		var k xtcp.CandidateKind
		ap, err := netip.ParseAddrPort(w.Addr)
		if err != nil || k.UnmarshalText([]byte(w.Kind)) != nil {
			continue
		}
		out = append(out, xtcp.Candidate{Addr: ap, Kind: k})
	}
	local, _ := xtcp.LocalPrefixes()
	return xtcp.OrderCandidates(local, out)
}

// Birthday punch sizes (see xtcp.PunchMany): with 384 mappings on the hard
// side and 1200 sprayed probes on the easy side a hit is all but certain.
const (
	birthdaySockets = 384
	birthdayProbes  = 1200
	birthdaySpread  = 300 * time.Millisecond
)

// mappingOf returns the mapping part of a NAT class ("EIM" of "EIM/APDF");
// "none" (no NAT) counts as endpoint-independent.
func mappingOf(class string) string {
	if class == "none" {
		return "EIM"
	}
	m, _, _ := strings.Cut(class, "/")
	return m
}

func hardMapping(class string) bool {
	m := mappingOf(class)
	return m == "APDM" || m == "ADM"
}

// hasMapped reports whether cands offer a gateway-mapped port.
func hasMapped(cands []protocol.Candidate) bool {
	for _, c := range cands {
		if c.Kind == "mapped" {
			return true
		}
	}
	return false
}

// punch runs the attempt's punch in the mode the two NATs call for: the
// plain punch, or a birthday punch when exactly one side maps every
// destination to a new port (that side opens many mappings, the other
// sprays probes at random ports) and that side offers no gateway-mapped
// port (the other side's probes to a mapped port get through, and its
// answers go back through the gateway's forwarding). It returns the socket
// the path uses; a socket it does not return is closed.
func punch(ctx context.Context, conn *net.UDPConn, cfg xtcp.PunchConfig, mine, theirs string, mineMapped bool, peer []protocol.Candidate) (*xtcp.PunchResult, *net.UDPConn, error) {
	switch {
	case hardMapping(mine) && mappingOf(theirs) == "EIM" && !mineMapped:
		conns := []*net.UDPConn{conn}
		for len(conns) < birthdaySockets {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{})
			if err != nil {
				break
			}
			conns = append(conns, c)
		}
		cfg.Interval, cfg.MaxPackets, cfg.MaxRate = time.Second, 16, 20 // about 4 probes each, the rest for answers
		return xtcp.PunchMany(ctx, conns, cfg, birthdaySpread)
	case mappingOf(mine) == "EIM" && hardMapping(theirs) && !hasMapped(peer):
		for _, c := range peer {
			if c.Kind == "srflx" {
				if ap, err := netip.ParseAddrPort(c.Addr); err == nil {
					cfg.SprayIP, cfg.SprayPorts = ap.Addr(), birthdayProbes
					cfg.MaxPackets, cfg.MaxRate = birthdayProbes+200, 500
					cfg.StartAt = cfg.StartAt.Add(birthdaySpread) // let the other side's mappings open first
				}
				break
			}
		}
	}
	res, err := xtcp.Punch(ctx, conn, cfg)
	return res, conn, err
}

func outcome(r *xtcp.PunchResult) string {
	if r.Kind == xtcp.PathLAN {
		return "lan"
	}
	return "direct"
}

// attempt is the visitor's side of one punch for link lc: its socket and
// candidates, the offer exchange through the server (the owner must prove
// it knows the secret before the visitor reveals its candidates, sealed,
// with the link's ID), the punch at the agreed moment, then the path as
// the link's direct carrier.
func (l *p2pLink) attempt(lc *linkConn) error {
	v, c := l.v, l.v.c
	start := time.Now()
	lv, err := c.current()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(l.ctx, 2*answerTimeout+punchTimeout)
	defer cancel()
	conn, cands, class, unmap, err := c.prepareSocket(ctx)
	if err != nil {
		return fmt.Errorf("P2P socket: %w", err)
	}
	ep, tcpCands := c.prepareTCP(ctx)
	tcpStarted := false
	defer func() {
		if ep != nil && !tcpStarted {
			ep.Close()
		}
	}()
	mappedConn := conn // the socket whose port the gateway maps
	keep := false
	defer func() {
		if !keep {
			conn.Close()
			mappedConn.Close()
			unmap()
		} else if conn != mappedConn { // a birthday punch won on another socket
			mappedConn.Close()
			unmap()
		}
	}()
	var idb [8]byte
	rand.Read(idb[:])
	id := hex.EncodeToString(idb[:])
	ps := pake.Start(pake.Initiator, []byte(v.cfg.SecretKey), c.visitorIdentity(v.cfg).Channel(p2pChannel), []byte(id), nil)
	authCh, doneAuth := c.waits.expectAuth("v/" + id)
	defer doneAuth()
	ansCh, done := c.waits.expectAnswer(id)
	defer done()
	if err := lv.ch.Send(ctx, &protocol.P2POffer{ID: id, Proxy: v.cfg.ServerName, ProxyType: string(v.cfg.Type),
		ServerUser: v.cfg.ServerUser, NAT: class, Share: ps.Share()}); err != nil {
		return err
	}
	var auth *protocol.P2PAuth
	select {
	case auth = <-authCh:
	case ans := <-ansCh:
		return fmt.Errorf("P2P refused: %s", ans.Error)
	case <-ctx.Done():
		return fmt.Errorf("no answer from the owner to the P2P offer within %v", answerTimeout)
	}
	isk, err := ps.Finish(auth.Share, []byte(auth.SessionID))
	if err != nil {
		return fmt.Errorf("%w: %v", errP2PUnconfirmed, err)
	}
	if !pake.Verify(isk, pake.Responder, auth.Tag) {
		return errP2PUnconfirmed
	}
	sid, err := xtcp.ParseSessionID(auth.SessionID)
	if err != nil {
		return err
	}
	if !c.replays.fresh("visitor/"+auth.SessionID, time.Now()) { // per role: a client may visit its own proxy
		return fmt.Errorf("%w: %s", errReplayedSession, auth.SessionID)
	}
	box, err := sealInfo(isk, infoBoxVisitor, auth.SessionID, &protocol.P2PInfo{Candidates: cands, NAT: class, Link: lc.id.String(), TCP: tcpCands})
	if err != nil {
		return err
	}
	if err := lv.ch.Send(ctx, &protocol.P2PAuth{SessionID: auth.SessionID, Tag: pake.Confirm(isk, pake.Initiator), Sealed: box}); err != nil {
		return err
	}
	var ans *protocol.P2PAnswer
	select {
	case ans = <-ansCh:
	case <-ctx.Done():
		return fmt.Errorf("no answer from the owner to the P2P offer within %v", answerTimeout)
	}
	if ans.Error != "" {
		return fmt.Errorf("P2P refused: %s", ans.Error)
	}
	if ans.SessionID != auth.SessionID {
		return fmt.Errorf("P2P answer for session %s, the exchange was for %s", ans.SessionID, auth.SessionID)
	}
	peer, err := openInfo(isk, infoBoxOwner, auth.SessionID, ans.Sealed)
	if err != nil {
		return fmt.Errorf("the owner's sealed candidates: %w", err)
	}
	key := attemptKey(isk)
	startAt := time.Now().Add(time.Duration(ans.DelayMs) * time.Millisecond)
	tcpCh := startTCPPunch(l.ctx, ep, key, sid, xtcp.RoleVisitor, peer.TCP, startAt, tcppunch.CarrierConfig{
		KeepaliveInterval: p2pSessionInterval(v.cfg), KeepaliveTimeout: v.cfg.KeepaliveTimeout.Duration, Logger: v.log}, v.log)
	tcpStarted = tcpCh != nil
	res, pconn, perr := punch(ctx, conn, xtcp.PunchConfig{
		Key: key, SessionID: sid, Role: xtcp.RoleVisitor,
		Remote: fromWire(peer.Candidates), StartAt: startAt,
		Timeout: punchTimeout, Logger: v.log,
	}, class, peer.NAT, hasMapped(cands), peer.Candidates)
	if pconn != nil {
		conn = pconn
	}
	result := &protocol.P2PResult{SessionID: auth.SessionID, Role: "visitor", ElapsedMs: time.Since(start).Milliseconds()}
	if perr != nil {
		var pe *xtcp.PunchError
		if errors.As(perr, &pe) {
			result.Packets = pe.PacketsSent
		}
		tr := awaitTCP(tcpCh)
		if tr.carrier == nil {
			result.Outcome, result.Error = "failed", perr.Error()
			if tr.err != nil {
				result.Error += "; over TCP: " + tr.err.Error()
			}
			v.result(result, class, peer.NAT)
			v.log.Info("direct path failed", "visitor_nat", class, "owner_nat", peer.NAT, "error", result.Error)
			return fmt.Errorf("punch failed (our NAT %s, theirs %s): %s", class, peer.NAT, result.Error)
		}
		result.ElapsedMs = time.Since(start).Milliseconds()
		tcpOutcome(result, tr.carrier)
		v.result(result, class, peer.NAT)
		if err := l.attachDirect(lc, xtcp.CarrierTCP, tr.carrier, func() {}); err != nil {
			return err
		}
		v.log.Info("direct path established", "transport", "tcp", "candidate", tr.carrier.Path().Kind, "remote", tr.carrier.RemoteAddr(),
			"time_to_path", time.Since(start).Round(time.Millisecond), "visitor_nat", class, "owner_nat", peer.NAT, "udp_error", perr)
		return nil
	}
	result.Outcome, result.Packets, result.Path, result.Transport = outcome(res), res.PacketsSent, res.Candidate.Kind.String(), "udp"
	if tcpCh != nil { // the TCP path too, as the link's second choice, before the result goes
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			if tr := awaitTCP(tcpCh); tr.carrier != nil {
				l.attachDirect(lc, xtcp.CarrierTCP, tr.carrier, func() {})
			}
		}()
	}
	v.result(result, class, peer.NAT)
	afterPath := func() {}
	if conn == mappedConn {
		afterPath = unmap
	}
	if res.Kind != xtcp.PathLAN { // a PCP gateway keeps the punched flow's mapping while it lives
		release, prev := c.mapper.keepFlow(context.Background(), udpPort(conn), res.Remote), afterPath
		afterPath = func() { release(); prev() }
	}
	uc, err := xtcp.NewUDPCarrier(conn, res.Remote, key, sid, xtcp.RoleVisitor, payloadOf(v.cfg.Type), l.sessionConfig())
	if err != nil {
		return err
	}
	keep = true
	if v.cfg.KeepaliveInterval.Auto { // the link's UDP paths follow the learnt interval (p2plife.go)
		unregister, prev := c.p2pka.register(lc.link, v.cfg.KeepaliveTimeout.Duration), afterPath
		afterPath = func() {
			unregister()
			if errors.Is(uc.Err(), xtcp.ErrPathDead) {
				c.p2pka.pathLost()
			}
			prev()
		}
	}
	if err := l.attachDirect(lc, xtcp.CarrierUDP, uc, afterPath); err != nil {
		return err
	}
	v.log.Info("direct path established", "transport", "udp", "path", res.Kind, "candidate", res.Candidate.Kind, "remote", res.Remote, "rtt", res.RTT,
		"time_to_path", time.Since(start).Round(time.Millisecond), "packets", res.PacketsSent, "visitor_nat", class, "owner_nat", peer.NAT)
	return nil
}

// result counts a visitor's attempt in hopc's metrics and reports it to
// the server (reportLater).
func (v *visitor) result(r *protocol.P2PResult, class, peerNAT string) {
	v.c.metrics.m.P2PResult(v.cfg.Name, class, peerNAT, r.Outcome, time.Duration(max(r.ElapsedMs, 0))*time.Millisecond)
	v.c.reportLater(r, class)
}

// reportLater sends the visitor's result for the server's tally once the
// NAT class is complete (the first full discovery may still run), in the
// background so that no connection waits for it.
func (c *Client) reportLater(r *protocol.P2PResult, class string) {
	c.connWG.Add(1)
	go func() {
		defer c.connWG.Done()
		r.NAT = c.refine(class, 10*time.Second)
		c.sendResult(r)
	}()
}

// ownerOffer is the owner's side of a punch for one of its xtcp/xudp
// proxies: the offer exchange (the visitor must prove it knows the secret
// before the owner opens a socket, reveals a candidate or sends a packet),
// then the server's go, the punch, and the visitor's connections over the
// path until it dies. Every punching decision comes from the visitor's
// sealed, authenticated P2PInfo, never from the offer's clear NAT.
func (c *Client) ownerOffer(ctx context.Context, via *live, m *protocol.P2POffer) {
	defer c.connWG.Done()
	rp := c.proxy(m.Proxy)
	var p config.ProxyConfig
	if rp != nil {
		p = rp.cfg
	}
	refuse := func(msg string) {
		sctx, cancel := context.WithTimeout(ctx, sendTimeout)
		defer cancel()
		via.ch.Send(sctx, &protocol.P2PAnswer{ID: m.ID, SessionID: m.SessionID, Code: protocol.CodeBadRequest, Error: msg})
	}
	// allowUsers is the server's to enforce; the owner checks it again, so
	// that a server that vouches for a visitor it should not cannot make
	// the owner take part. A refused user hears the same as for no proxy.
	if rp == nil || string(p.Type) != m.ProxyType || !p.AllowsUser(c.cfg.User, m.VisitorUser) {
		refuse(fmt.Sprintf("this client has no %s proxy named %q", m.ProxyType, m.Proxy))
		return
	}
	log := c.log.With("proxy", p.Name, "type", p.Type, "visitor", m.Visitor, "visitor_user", m.VisitorUser, "session", m.SessionID)
	release, err := c.replays.admit(p.Name, m.VisitorUser+"/"+m.Visitor)
	if err != nil {
		log.Warn("P2P offer refused", "error", err)
		refuse(err.Error())
		return
	}
	defer release()
	sid, err := xtcp.ParseSessionID(m.SessionID)
	if err != nil {
		refuse(err.Error())
		return
	}
	if !c.replays.fresh("owner/"+m.SessionID, time.Now()) {
		log.Warn("P2P offer refused", "error", errReplayedSession)
		refuse(errReplayedSession.Error())
		return
	}
	ident := visitIdentity(p, m.VisitorUser, m.Visitor, c.cfg.User)
	ps := pake.Start(pake.Responder, []byte(p.SecretKey), ident.Channel(p2pChannel), []byte(m.ID), []byte(m.SessionID))
	isk, err := ps.Finish(m.Share, nil)
	if err != nil {
		refuse(fmt.Sprintf("%v: %v", errP2PUnconfirmed, err))
		return
	}
	base := ctx // outlives the attempt, for its TCP punch
	ctx, cancel := context.WithTimeout(ctx, 3*answerTimeout+punchTimeout)
	defer cancel()
	l := via // the node that brought the offer relays the rest of the exchange
	authCh, doneAuth := c.waits.expectAuth("o/" + m.SessionID)
	defer doneAuth()
	if err := l.ch.Send(ctx, &protocol.P2PAuth{SessionID: m.SessionID, Share: ps.Share(), Tag: pake.Confirm(isk, pake.Responder)}); err != nil {
		return
	}
	var auth *protocol.P2PAuth
	t := time.NewTimer(answerTimeout)
	defer t.Stop()
	select {
	case auth = <-authCh:
	case <-t.C:
		log.Info("P2P offer abandoned: the visitor did not confirm", "within", answerTimeout)
		refuse("the visitor did not confirm the key exchange in time")
		return
	case <-ctx.Done():
		return
	}
	if !pake.Verify(isk, pake.Initiator, auth.Tag) {
		log.Warn("P2P offer refused", "error", errP2PUnconfirmed)
		refuse(errP2PUnconfirmed.Error())
		return
	}
	peer, err := openInfo(isk, infoBoxVisitor, m.SessionID, auth.Sealed)
	if err != nil {
		log.Warn("P2P offer refused: the visitor's sealed candidates", "error", err)
		refuse("the visitor's sealed candidates: " + err.Error())
		return
	}
	linkID, err := protocol.ParseLinkID(peer.Link)
	if err != nil {
		log.Warn("P2P offer refused: the visitor names no link (a hopc from before relay-first links; upgrade it)", "error", err)
		refuse("the visitor names no link: upgrade its hopc")
		return
	}
	// The visitor is proven: now the owner may open its socket and reveal
	// itself.
	conn, cands, class, unmap, err := c.prepareSocket(ctx)
	if err != nil {
		refuse("the owner cannot open a UDP socket: " + err.Error())
		return
	}
	keep := false // the path's carrier took conn (and its mapping)
	defer func() {
		if !keep {
			unmap() // after the socket is closed
		}
	}()
	mappedConn := conn
	defer func() {
		if !keep || mappedConn != conn {
			mappedConn.Close()
		}
	}()
	ep, tcpCands := c.prepareTCP(ctx)
	tcpStarted := false
	defer func() {
		if ep != nil && !tcpStarted {
			ep.Close()
		}
	}()
	box, err := sealInfo(isk, infoBoxOwner, m.SessionID, &protocol.P2PInfo{Candidates: cands, NAT: class, TCP: tcpCands})
	if err != nil {
		conn.Close()
		refuse(err.Error())
		return
	}
	goCh, done := c.waits.expectGo(m.SessionID)
	defer done()
	if err := l.ch.Send(ctx, &protocol.P2PAnswer{ID: m.ID, SessionID: m.SessionID, NAT: class, Sealed: box}); err != nil {
		conn.Close()
		return
	}
	var g *protocol.P2PGo
	select {
	case g = <-goCh:
	case <-ctx.Done():
		conn.Close()
		return
	}
	start := time.Now()
	key := attemptKey(isk)
	startAt := start.Add(time.Duration(g.DelayMs) * time.Millisecond)
	tcpCh := startTCPPunch(base, ep, key, sid, xtcp.RoleOwner, peer.TCP, startAt, tcppunch.CarrierConfig{Logger: log}, log)
	tcpStarted = tcpCh != nil
	res, pconn, perr := punch(ctx, conn, xtcp.PunchConfig{
		Key: key, SessionID: sid, Role: xtcp.RoleOwner,
		Remote: fromWire(peer.Candidates), StartAt: startAt,
		Timeout: punchTimeout, Logger: log,
	}, class, peer.NAT, hasMapped(cands), peer.Candidates)
	if pconn != nil {
		conn = pconn
	}
	release() // the attempt is over; a path that follows is not an offer in flight
	result := &protocol.P2PResult{SessionID: m.SessionID, Role: "owner", ElapsedMs: time.Since(start).Milliseconds()}
	var tr tcpResult
	if perr != nil {
		tr = awaitTCP(tcpCh)
		if tr.carrier == nil {
			result.Outcome, result.Error = "failed", perr.Error()
			if tr.err != nil {
				result.Error += "; over TCP: " + tr.err.Error()
			}
			c.sendResult(result)
			conn.Close()
			log.Info("direct path to visitor failed", "owner_nat", class, "visitor_nat", peer.NAT, "error", result.Error)
			return
		}
		result.ElapsedMs = time.Since(start).Milliseconds()
		tcpOutcome(result, tr.carrier)
	} else {
		result.Outcome, result.Packets, result.Path, result.Transport = outcome(res), res.PacketsSent, res.Candidate.Kind.String(), "udp"
	}
	c.sendResult(result)
	ol, err := c.ownerLink(rp, m.VisitorUser, m.Visitor, linkID, true)
	if err != nil {
		conn.Close()
		if tr.carrier != nil {
			tr.carrier.Close()
		}
		log.Warn("direct path to visitor dropped", "error", err)
		return
	}
	if tr.carrier != nil { // UDP failed, TCP made it
		conn.Close()
		c.attachOwnerTCP(ol, tr.carrier, log)
		log.Info("direct path to visitor established", "transport", "tcp", "candidate", tr.carrier.Path().Kind, "remote", tr.carrier.RemoteAddr())
		return
	}
	log.Info("direct path to visitor established", "transport", "udp", "path", res.Kind, "candidate", res.Candidate.Kind, "remote", res.Remote, "rtt", res.RTT)
	if tcpCh != nil { // the TCP path too, as the link's second choice
		c.connWG.Add(1)
		go func() {
			defer c.connWG.Done()
			if tr := awaitTCP(tcpCh); tr.carrier != nil {
				c.attachOwnerTCP(ol, tr.carrier, log)
			}
		}()
	}
	uc, err := xtcp.NewUDPCarrier(conn, res.Remote, key, sid, xtcp.RoleOwner, payloadOf(p.Type), xtcp.SessionConfig{Logger: log})
	if err != nil {
		conn.Close()
		return
	}
	// The owner's UDP paths always follow the learnt interval (p2plife.go):
	// the owner has no keepalive setting of its own.
	unregister := c.p2pka.register(ol.link, uc.KeepaliveTimeout())
	if err := ol.link.Attach(xtcp.CarrierUDP, uc); err != nil {
		unregister()
		log.Info("direct path to visitor dropped: its link has ended", "cause", err)
		return
	}
	keep = true
	after := func() {
		unregister()
		if errors.Is(uc.Err(), xtcp.ErrPathDead) {
			c.p2pka.pathLost()
		}
	}
	if conn == mappedConn {
		prev := after
		after = func() { prev(); unmap() }
	}
	if res.Kind != xtcp.PathLAN {
		release, prev := c.mapper.keepFlow(context.Background(), udpPort(conn), res.Remote), after
		after = func() { release(); prev() }
	}
	c.connWG.Add(1)
	go func() {
		defer c.connWG.Done()
		<-uc.Done()
		uc.Close()
		after()
		log.Info("direct path to visitor closed", "cause", uc.Err())
	}()
}

// packetConn is an xudp link's datagrams (xtcp.Link).
type packetConn interface {
	Send(b []byte) error
	Recv(b []byte) (int, error)
}

// ownerFlow is one visitor source of an xudp path, with its own socket to
// the local service.
type ownerFlow struct {
	conn   *net.UDPConn
	active idle.Stamp
}

// serveDatagramPath moves an xudp path's datagrams to and from the local
// service: every flow ID (one visitor source) gets its own UDP socket,
// closed after the proxy's idleTimeout.
func (c *Client) serveDatagramPath(d packetConn, p config.ProxyConfig, local string) {
	ua, err := net.ResolveUDPAddr("udp", local)
	if err != nil {
		c.localDown(p, err)
		return
	}
	pc := c.proxyConns(p.Name)
	var mu sync.Mutex
	flows := map[uint32]*ownerFlow{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	defer func() {
		close(stop)
		mu.Lock()
		for _, f := range flows {
			f.conn.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	wg.Add(1)
	go func() { // idle flows
		defer wg.Done()
		idle.Sweep(p.IdleTimeout.Duration, stop, func(now time.Time) bool {
			mu.Lock()
			for id, f := range flows {
				if f.active.Idle(now, p.IdleTimeout.Duration) {
					f.conn.Close()
					delete(flows, id)
				}
			}
			mu.Unlock()
			return true
		})
	}()
	buf := make([]byte, 65536)
	for {
		n, err := d.Recv(buf)
		if err != nil {
			return
		}
		if n < 4 {
			continue
		}
		id := binary.BigEndian.Uint32(buf)
		mu.Lock()
		f := flows[id]
		if f == nil {
			lc, err := net.DialUDP("udp", nil, ua)
			if err != nil {
				mu.Unlock()
				c.localDown(p, err)
				continue
			}
			f = &ownerFlow{conn: lc}
			flows[id] = f
			pc.Opened()
			wg.Add(1)
			go func() { // local service → path
				defer wg.Done()
				defer pc.Closed()
				out := make([]byte, 4+protocol.MaxDatagram)
				binary.BigEndian.PutUint32(out, id)
				for {
					k, err := lc.Read(out[4:])
					if err != nil {
						return
					}
					f.active.Touch()
					if d.Send(out[:4+k]) != nil {
						return
					}
					pc.Out.Add(int64(k))
				}
			}()
		}
		mu.Unlock()
		f.active.Touch()
		k, _ := f.conn.Write(buf[4:n])
		pc.In.Add(int64(k))
	}
}

// Recently used P2P session IDs, so that a reused one (a malicious server
// or an impostor replaying an attempt) is refused.
const (
	maxSeenSessions = 4096
	seenSessionTTL  = 10 * time.Minute
)

// replayCache is the name client.Client's field has for the P2P guard.
type replayCache = p2pGuard

// p2pGuard is a client's defence against abusive P2P offers: the recent
// session IDs (a bounded set) and the owner's count of offers in flight per
// proxy and per visitor.
type p2pGuard struct {
	mu         sync.Mutex
	seen       map[string]time.Time
	order      []string // seen's keys, oldest first
	perProxy   map[string]int
	perVisitor map[string]int
}

// fresh records a session ID and reports whether it was not used before.
func (g *p2pGuard) fresh(id string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen == nil {
		g.seen = map[string]time.Time{}
	}
	for len(g.order) > 0 && (len(g.order) >= maxSeenSessions || now.Sub(g.seen[g.order[0]]) > seenSessionTTL) {
		delete(g.seen, g.order[0])
		g.order = g.order[1:]
	}
	if _, dup := g.seen[id]; dup {
		return false
	}
	g.seen[id] = now
	g.order = append(g.order, id)
	return true
}

// Owner-side caps of P2P offers in flight (the server has its own).
const (
	maxOffersPerProxy   = 8
	maxOffersPerVisitor = 2
)

// admit counts an offer for proxy from visitor if both are under their
// caps; release undoes it.
func (g *p2pGuard) admit(proxy, visitor string) (release func(), err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.perProxy == nil {
		g.perProxy, g.perVisitor = map[string]int{}, map[string]int{}
	}
	switch {
	case g.perProxy[proxy] >= maxOffersPerProxy:
		return nil, fmt.Errorf("%w: %d P2P offers for proxy %q in flight (at most %d)", errTooManyOffers, g.perProxy[proxy], proxy, maxOffersPerProxy)
	case g.perVisitor[visitor] >= maxOffersPerVisitor:
		return nil, fmt.Errorf("%w: %d P2P offers from visitor %q in flight (at most %d)", errTooManyOffers, g.perVisitor[visitor], visitor, maxOffersPerVisitor)
	}
	g.perProxy[proxy]++
	g.perVisitor[visitor]++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.perProxy[proxy]--; g.perProxy[proxy] <= 0 {
				delete(g.perProxy, proxy)
			}
			if g.perVisitor[visitor]--; g.perVisitor[visitor] <= 0 {
				delete(g.perVisitor, visitor)
			}
		})
	}, nil
}

// udpPort is the local port of a P2P socket.
func udpPort(c *net.UDPConn) uint16 { return uint16(c.LocalAddr().(*net.UDPAddr).Port) }

// attachOwnerTCP gives an owner's link a punched TCP path.
func (c *Client) attachOwnerTCP(ol *ownerLink, cr *tcppunch.Carrier, log *slog.Logger) {
	if err := ol.link.Attach(xtcp.CarrierTCP, cr); err != nil {
		return
	}
	c.connWG.Add(1)
	go func() {
		defer c.connWG.Done()
		<-cr.Done()
		log.Info("direct TCP path to visitor closed", "cause", cr.Err())
	}()
}
