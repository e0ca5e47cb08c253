package xtcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"time"
)

// PunchConfig configures one punch attempt. Key, SessionID, Role and
// Remote are required; a zero duration or count means its default.
type PunchConfig struct {
	// Key is the attempt key both peers agreed on (KeySize bytes): hop
	// derives it from the ISK of the offer's PAKE exchange, to which both
	// peers contributed fresh randomness, so it is new for every attempt
	// even when a session ID repeats. It never leaves the machine: packets
	// carry an HMAC keyed by HKDF-SHA256(Key, salt = SessionID,
	// info = "hop punch v1").
	Key []byte
	// SessionID identifies this attempt; the server makes it.
	SessionID SessionID
	// Role is ours; the peer must have the other one.
	Role Role
	// Remote lists the peer's candidates in the order to try them
	// (OrderCandidates). At most MaxCandidates are used.
	Remote []Candidate
	// StartAt is when both peers start sending, as agreed through the
	// server; Punch sleeps until then. Zero starts at once.
	StartAt time.Time
	// Interval is the pause between two rounds of probes (one probe to
	// every candidate) during the first second; it doubles every further
	// second, up to 16 times Interval, so that MaxPackets lasts. Default
	// 25 ms.
	Interval time.Duration
	// MaxPackets bounds every packet this attempt sends, probes and
	// answers alike. Probes stop a few short of it to leave room for
	// answers. Default 200.
	MaxPackets int
	// MaxRate bounds the packets sent per second. Default 400.
	MaxRate int
	// Timeout bounds the attempt, counted from StartAt. Default 10 s.
	Timeout time.Duration
	// MaxClockSkew is how far a packet's timestamp may be from our clock.
	// Default 60 s.
	MaxClockSkew time.Duration
	// SprayIP and SprayPorts make Punch also probe SprayPorts distinct
	// random ports (1024-65535) of SprayIP, once per round after the
	// listed candidates. It is the easy side of a birthday punch against
	// a peer whose NAT maps every destination to a new random port: that
	// peer opens many mappings towards us (PunchMany), and one of our
	// probes is likely to hit one. MaxPackets must leave room for them.
	SprayIP    netip.Addr
	SprayPorts int
	// Logger gets one line per attempt outcome; nil discards.
	Logger *slog.Logger
}

// Defaults and limits of PunchConfig.
const (
	DefaultPunchInterval   = 25 * time.Millisecond
	DefaultPunchMaxPackets = 200
	DefaultPunchMaxRate    = 400
	DefaultPunchTimeout    = 10 * time.Second
	DefaultMaxClockSkew    = 60 * time.Second
	// MaxCandidates is how many listed candidates Punch probes; at most
	// maxPeerReflexive learned ones come on top.
	MaxCandidates    = 16
	maxPeerReflexive = 8
	// MaxSprayPorts bounds PunchConfig.SprayPorts.
	MaxSprayPorts = 4096
)

// withDefaults validates c and fills in the defaults.
func (c PunchConfig) withDefaults() (PunchConfig, error) {
	if err := checkKey(c.Key); err != nil {
		return c, err
	}
	if c.SessionID.IsZero() {
		return c, errors.New("xtcp: punch: zero session ID")
	}
	if !c.Role.valid() {
		return c, fmt.Errorf("xtcp: punch: invalid role %d", uint8(c.Role))
	}
	if len(c.Remote) == 0 {
		return c, errors.New("xtcp: punch: no remote candidates")
	}
	for _, v := range []struct {
		name string
		d    *time.Duration
		def  time.Duration
	}{
		{"interval", &c.Interval, DefaultPunchInterval},
		{"timeout", &c.Timeout, DefaultPunchTimeout},
		{"maxClockSkew", &c.MaxClockSkew, DefaultMaxClockSkew},
	} {
		if *v.d < 0 {
			return c, fmt.Errorf("xtcp: punch: negative %s %v", v.name, *v.d)
		}
		if *v.d == 0 {
			*v.d = v.def
		}
	}
	if c.SprayPorts < 0 || c.SprayPorts > MaxSprayPorts || (c.SprayPorts > 0 && !c.SprayIP.IsValid()) {
		return c, fmt.Errorf("xtcp: punch: spray of %d ports at %v: want 0-%d ports at a valid address", c.SprayPorts, c.SprayIP, MaxSprayPorts)
	}
	if c.MaxPackets < 0 || c.MaxRate < 0 {
		return c, fmt.Errorf("xtcp: punch: negative maxPackets %d or maxRate %d", c.MaxPackets, c.MaxRate)
	}
	if c.MaxPackets == 0 {
		c.MaxPackets = DefaultPunchMaxPackets
	}
	if c.MaxRate == 0 {
		c.MaxRate = DefaultPunchMaxRate
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// PunchResult describes the path a punch found.
type PunchResult struct {
	// Remote is the peer's address on the path: send to it from the same
	// socket. It may differ from every listed candidate (peer-reflexive).
	Remote netip.AddrPort
	// Candidate is the candidate Remote came from (Kind PeerReflexive if
	// none listed it).
	Candidate Candidate
	// Kind says whether the path stays in a LAN, from Remote's address.
	Kind PathKind
	// RTT is our probe's round trip to Remote, or 0 if ours did not
	// complete (possible on the visitor, which follows the owner's choice).
	RTT time.Duration
	// PacketsSent counts every packet the attempt sent.
	PacketsSent int
	// Elapsed runs from StartAt (or the call, if later) to success.
	Elapsed time.Duration
}

// aLongTimeAgo is a read deadline in the past: it wakes a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

type punchCand struct {
	Candidate
	dead bool // a send to it failed (for example another address family)
}

type sentProbe struct {
	cand int
	at   time.Time
}

// Punch punches a hole to the peer through conn and agrees with it on one
// 5-tuple, following the rule in the package doc: the owner picks the
// first candidate whose probe round trip completes (a LAN one if two
// complete in the same round) and announces it with Selected until the
// visitor confirms; the visitor takes the address Selected came from.
//
// Punch sleeps until cfg.StartAt, then sends probes to every candidate in
// rounds and answers authentic probes from anywhere (which is how a
// peer-reflexive address is learned). It reads from conn itself, so nobody
// else may read from conn meanwhile; it sets conn's read deadline and
// clears it on return. It starts no goroutine. On failure it returns a
// *PunchError.
//
// After success, hand conn to DialKCP/AcceptKCP or NewDatagramPath at
// once: the peer's late probes and confirmations are answered there.
func Punch(ctx context.Context, conn *net.UDPConn, cfg PunchConfig) (*PunchResult, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if conn == nil {
		return nil, errors.New("xtcp: punch: nil conn")
	}
	if wait := time.Until(cfg.StartAt); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, &PunchError{Reason: Canceled, Role: cfg.Role, Err: ctx.Err()}
		case <-t.C:
		}
	}
	woke := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(woke)
		conn.SetReadDeadline(aLongTimeAgo)
	})
	defer func() {
		if !stop() {
			<-woke
		}
		conn.SetReadDeadline(time.Time{})
	}()

	ps := newPuncher(conn, cfg)
	res, err := ps.run(ctx)
	if err != nil {
		cfg.Logger.Info("p2p punch failed", "role", cfg.Role, "session", cfg.SessionID, "err", err)
		return nil, err
	}
	cfg.Logger.Info("p2p punch succeeded", "role", cfg.Role, "session", cfg.SessionID,
		"peer", res.Remote, "candidate", res.Candidate.Kind, "kind", res.Kind, "rtt", res.RTT,
		"packets", res.PacketsSent, "elapsed", res.Elapsed.Round(time.Millisecond))
	return res, nil
}

// puncher is the state of one Punch call; only its goroutine touches it.
type puncher struct {
	conn  *net.UDPConn
	cfg   PunchConfig
	key   *ctlKey
	guard *ctlGuard

	cands      []punchCand
	prflx      int
	probeLimit int // probes stop here; answers may go up to MaxPackets
	sent       int // every packet sent
	minGap     time.Duration
	lastSend   time.Time

	seq    uint32
	probes map[uint32]sentProbe

	trips     map[netip.AddrPort]roundTrip // completed round trips
	decideAt  time.Time                    // owner: when to pick among them
	selected  netip.AddrPort               // owner: announced pick
	nextSel   time.Time                    // owner: next Selected
	confirmed bool                         // owner: visitor confirmed

	peer, rejected, stray int
	lastRejection         error
}

func newPuncher(conn *net.UDPConn, cfg PunchConfig) *puncher {
	ps := &puncher{
		conn:   conn,
		cfg:    cfg,
		key:    newCtlKey(cfg.Key, cfg.SessionID),
		guard:  newCtlGuard(cfg.Role, cfg.MaxClockSkew),
		probes: make(map[uint32]sentProbe),
		trips:  make(map[netip.AddrPort]roundTrip),
		minGap: time.Second / time.Duration(cfg.MaxRate),
	}
	seen := map[netip.AddrPort]bool{}
	for _, c := range cfg.Remote {
		if c.Validate() != nil || len(ps.cands) == MaxCandidates {
			continue
		}
		c.Addr = unmapAP(c.Addr)
		if !seen[c.Addr] {
			seen[c.Addr] = true
			ps.cands = append(ps.cands, punchCand{Candidate: c})
		}
	}
	if cfg.SprayPorts > 0 {
		ip := cfg.SprayIP.Unmap()
		for added := 0; added < cfg.SprayPorts; {
			a := netip.AddrPortFrom(ip, uint16(1024+rand.IntN(65536-1024)))
			if !seen[a] {
				seen[a] = true
				ps.cands = append(ps.cands, punchCand{Candidate: Candidate{Addr: a, Kind: Predicted}})
				added++
			}
		}
	}
	reserve := min(16, cfg.MaxPackets/4)
	ps.probeLimit = cfg.MaxPackets - reserve
	return ps
}

func (ps *puncher) candIndex(a netip.AddrPort) int {
	for i, c := range ps.cands {
		if c.Addr == a {
			return i
		}
	}
	return -1
}

// send sends one control packet if the budget and rate allow.
func (ps *puncher) send(typ ctlType, seq uint32, to netip.AddrPort) error {
	if ps.sent >= ps.cfg.MaxPackets {
		return errBudget
	}
	var b [ctlLen]byte
	now := time.Now()
	_, err := ps.conn.WriteToUDPAddrPort(ps.key.seal(b[:0], typ, ps.cfg.Role, seq, now), to)
	ps.sent++ // a failed send counts: it may have left
	ps.lastSend = now
	return err
}

var errBudget = errors.New("packet budget spent")

func (ps *puncher) fail(reason PunchFailure, start time.Time, err error) *PunchError {
	if reason == 0 {
		switch {
		case ps.selected.IsValid():
			reason = NotConfirmed
		case ps.peer > 0:
			reason = NoRoundTrip
		case ps.rejected > 0:
			reason = PeerPacketsRejected
		default:
			reason = NoPeerPackets
		}
	}
	return &PunchError{
		Reason: reason, Role: ps.cfg.Role, Elapsed: time.Since(start), PacketsSent: ps.sent,
		PeerPackets: ps.peer, Rejected: ps.rejected, LastRejection: ps.lastRejection, Stray: ps.stray, Err: err,
	}
}

func (ps *puncher) run(ctx context.Context) (*PunchResult, error) {
	start := time.Now()
	deadline := start.Add(ps.cfg.Timeout)
	nextProbe, rr := start, 0
	buf := make([]byte, 2048)
	for {
		now := time.Now()
		if r := ps.result(start, now); r != nil {
			return r, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, ps.fail(Canceled, start, err)
		}
		if !now.Before(deadline) {
			return nil, ps.fail(0, start, ErrPunchTimeout)
		}

		// Owner: pick once the decision time has come.
		if ps.cfg.Role == RoleOwner && !ps.selected.IsValid() && !ps.decideAt.IsZero() && !now.Before(ps.decideAt) {
			ps.selected = ps.pick()
			ps.nextSel = now
		}
		wake := deadline
		if !ps.decideAt.IsZero() && !ps.selected.IsValid() {
			wake = minTime(wake, ps.decideAt)
		}
		// Sending, paced by the rate bound.
		if now.Sub(ps.lastSend) >= ps.minGap || ps.lastSend.IsZero() {
			switch {
			case ps.selected.IsValid():
				if !now.Before(ps.nextSel) {
					ps.send(ctlSelected, 0, ps.selected)
					ps.nextSel = now.Add(ps.roundInterval(now.Sub(start)))
				}
			case !now.Before(nextProbe) && ps.sent < ps.probeLimit:
				i := ps.nextCand(rr)
				if i < 0 {
					i = ps.nextCand(0) // candidates died or were learned since
				}
				if i >= 0 {
					ps.seq++
					if err := ps.send(ctlProbe, ps.seq, ps.cands[i].Addr); err != nil && err != errBudget {
						ps.cands[i].dead = true // e.g. IPv6 candidate on an IPv4 socket
					} else {
						ps.probes[ps.seq] = sentProbe{cand: i, at: now}
					}
					rr = i + 1
					if ps.nextCand(rr) < 0 { // the round is over
						rr = 0
						nextProbe = now.Add(ps.roundInterval(now.Sub(start)))
					}
				}
			}
		}
		if ps.selected.IsValid() {
			wake = minTime(wake, ps.nextSel)
		} else if ps.sent < ps.probeLimit && ps.nextCand(0) >= 0 {
			wake = minTime(wake, nextProbe)
		}
		if !ps.lastSend.IsZero() {
			wake = maxTime(wake, ps.lastSend.Add(ps.minGap))
		}
		wake = minTime(wake, deadline)

		ps.conn.SetReadDeadline(wake)
		if ctx.Err() != nil {
			continue // the AfterFunc may have run before SetReadDeadline
		}
		n, from, err := ps.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) || transientReadError(err) {
				continue
			}
			return nil, ps.fail(SocketFailed, start, err)
		}
		ps.receive(buf[:n], unmapAP(from), time.Now())
	}
}

// roundInterval paces rounds: Interval in the first second, doubling each
// second after, at most 16 times Interval.
func (ps *puncher) roundInterval(elapsed time.Duration) time.Duration {
	shift := min(int(elapsed/time.Second), 4)
	return ps.cfg.Interval << shift
}

// nextCand returns the first live candidate at or after i, or -1.
func (ps *puncher) nextCand(i int) int {
	for ; i < len(ps.cands); i++ {
		if !ps.cands[i].dead {
			return i
		}
	}
	return -1
}

// receive handles one packet.
func (ps *puncher) receive(b []byte, from netip.AddrPort, now time.Time) {
	if !isCtl(b) {
		ps.stray++
		return
	}
	pkt, err := ps.key.open(b)
	if err == nil {
		err = ps.guard.check(pkt, now)
	}
	if err != nil {
		ps.rejected++
		ps.lastRejection = err
		return
	}
	ps.peer++
	switch pkt.Type {
	case ctlProbe:
		ps.send(ctlProbeAck, pkt.Seq, from)
		ps.learn(from)
		if ps.cfg.Role == RoleOwner && ps.selected == from {
			// The visitor is still probing: it missed Selected.
			ps.nextSel = now
		}
	case ctlProbeAck:
		sp, ok := ps.probes[pkt.Seq]
		if !ok {
			return
		}
		delete(ps.probes, pkt.Seq)
		if ps.cands[sp.cand].Addr != from {
			// Answered from elsewhere: probe that address too.
			ps.learn(from)
			return
		}
		if _, done := ps.trips[from]; done {
			return
		}
		ps.trips[from] = roundTrip{rtt: now.Sub(sp.at), at: now}
		if ps.cfg.Role == RoleOwner && ps.decideAt.IsZero() {
			ps.decideAt = now.Add(ps.cfg.Interval)
		}
		if ps.cfg.Role == RoleOwner && ClassifyPath(from) == PathLAN {
			ps.decideAt = now // nothing beats a LAN path
		}
	case ctlSelected:
		if ps.cfg.Role == RoleVisitor {
			ps.send(ctlSelectedAck, pkt.Seq, from)
			ps.learn(from)
			ps.selected = from
			ps.confirmed = true
		}
	case ctlSelectedAck, ctlKeepalive:
		// A keepalive from the visitor's path means it confirmed too.
		if ps.cfg.Role == RoleOwner && ps.selected.IsValid() && from == ps.selected {
			ps.confirmed = true
		}
	}
}

// learn adds an unlisted address of the peer as a peer-reflexive
// candidate.
func (ps *puncher) learn(a netip.AddrPort) {
	if ps.candIndex(a) >= 0 || ps.prflx >= maxPeerReflexive {
		return
	}
	if (Candidate{Addr: a, Kind: PeerReflexive}).Validate() != nil {
		return
	}
	ps.prflx++
	ps.cands = append(ps.cands, punchCand{Candidate: Candidate{Addr: a, Kind: PeerReflexive}})
}

type roundTrip struct {
	rtt time.Duration
	at  time.Time // completion
}

// pick returns the owner's choice among the round trips completed by
// decideAt (the first completion plus one Interval): a LAN path if any,
// else the first to complete.
func (ps *puncher) pick() netip.AddrPort {
	var best netip.AddrPort
	var bestAt time.Time
	bestLAN := false
	for _, c := range ps.cands { // candidate order breaks ties
		t, ok := ps.trips[c.Addr]
		if !ok {
			continue
		}
		lan := ClassifyPath(c.Addr) == PathLAN
		if !best.IsValid() || (lan && !bestLAN) || (lan == bestLAN && t.at.Before(bestAt)) {
			best, bestAt, bestLAN = c.Addr, t.at, lan
		}
	}
	return best
}

// result returns the outcome once there is one.
func (ps *puncher) result(start, now time.Time) *PunchResult {
	if !ps.confirmed || !ps.selected.IsValid() {
		return nil
	}
	cand := Candidate{Addr: ps.selected, Kind: PeerReflexive}
	if i := ps.candIndex(ps.selected); i >= 0 {
		cand = ps.cands[i].Candidate
	}
	return &PunchResult{
		Remote:      ps.selected,
		Candidate:   cand,
		Kind:        ClassifyPath(ps.selected),
		RTT:         ps.trips[ps.selected].rtt,
		PacketsSent: ps.sent,
		Elapsed:     now.Sub(start),
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
