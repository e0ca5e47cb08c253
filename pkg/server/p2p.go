package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/xtcp/nat"
)

// attemptTTL bounds how long the server remembers a P2P attempt.
const attemptTTL = time.Minute

// maxAttempts bounds the attempts the server remembers at once; within it
// each client may have limits.maxP2PAttemptsPerClient, and each secret
// proxy limits.maxP2POffersPerProxy offers not yet answered by its owner.
const maxAttempts = 4096

// attempt is one P2P punch the server coordinates.
type attempt struct {
	offerID    string
	session    string
	proxy      string
	typ        string
	visitor    *session
	owner      *session
	visitorNAT string
	ownerNAT   string
	answered   bool   // the owner answered the offer
	ownerPath  string // the owner's P2PResult.path, if it came first
	created    time.Time
}

// p2pState holds the attempts in flight and the tally of their outcomes.
type p2pState struct {
	mu       sync.Mutex
	attempts map[string]*attempt // by session ID
	pairs    map[natPair]*PairStats
	dropped  atomic.Int64 // messages for another session dropped on its full queue
}

type natPair struct{ Visitor, Owner string }

// PairStats counts the P2P attempts between one pair of NAT behaviours.
type PairStats struct {
	VisitorNAT string `json:"visitorNAT"`
	OwnerNAT   string `json:"ownerNAT"`
	Attempts   int    `json:"attempts"`
	LAN        int    `json:"lan"`
	Direct     int    `json:"direct"`
	Relay      int    `json:"relay"`
	// Mapped counts the direct paths that ran to a port the gateway of
	// one client mapped on request (candidate kind "mapped").
	Mapped int `json:"mapped"`
	// TCP counts the direct paths that run over a punched TCP connection
	// (P2PResult.transport "tcp"); the rest of Direct and LAN run over
	// UDP.
	TCP           int     `json:"tcp"`
	AvgToDirectMs float64 `json:"avgToDirectMs"`
	totalMs       int64
}

func newP2PState() *p2pState {
	return &p2pState{attempts: map[string]*attempt{}, pairs: map[natPair]*PairStats{}}
}

// sendTimeout answers the session whose message is being handled: its own
// read loop waits while its own queue is full.
func sendTimeout(ss *session, m protocol.Message) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return ss.ch.Send(ctx, m)
}

// errQueueFull: a message for another session was dropped because that
// session's control queue is full (it does not read).
var errQueueFull = errors.New("its control queue is full")

// forward queues m for another session than the one being handled, never
// waiting: one session that does not read must not stall another's read
// loop. A message that does not fit is dropped and counted.
func (s *Server) forward(to *session, m protocol.Message) error {
	if to.ch.TrySend(m) {
		return nil
	}
	n := s.p2p.dropped.Add(1)
	to.log.Debug("P2P message dropped: the session's control queue is full", "type", m.Type(), "dropped_total", n)
	return errQueueFull
}

// P2PDropped is the number of P2P messages dropped because the session
// they were for did not read its control stream.
func (s *Server) P2PDropped() int64 { return s.p2p.dropped.Load() }

// p2pOffer handles a visitor's request for a direct path: it checks the
// proxy, names the attempt and hands the offer to the proxy's owner.
func (s *Server) p2pOffer(ss *session, m *protocol.P2POffer) {
	p, perr := s.lookupSecret(ss, m.ServerUser, m.Proxy, m.ProxyType)
	if perr != nil {
		sendTimeout(ss, &protocol.P2PAnswer{ID: m.ID, Code: perr.Code, Error: perr.Message})
		return
	}
	var id [16]byte
	rand.Read(id[:])
	a := &attempt{offerID: m.ID, session: hex.EncodeToString(id[:]), proxy: p.fullName(), typ: p.typ,
		visitor: ss, owner: p.owner, visitorNAT: m.NAT, created: time.Now()}
	st := s.p2p
	lim := s.cfg.Limits
	st.mu.Lock()
	mine, waiting := 0, 0
	for k, old := range st.attempts {
		if time.Since(old.created) > attemptTTL {
			delete(st.attempts, k)
			continue
		}
		if old.visitor.key() == ss.key() {
			mine++
		}
		if old.proxy == a.proxy && !old.answered {
			waiting++
		}
	}
	var refusal string
	switch {
	case mine >= lim.MaxP2PAttemptsPerClient:
		refusal = fmt.Sprintf("this client already has %d P2P attempts in progress, the server's limits.maxP2PAttemptsPerClient; try again when they end", mine)
	case waiting >= lim.MaxP2POffersPerProxy:
		refusal = fmt.Sprintf("proxy %s already has %d P2P offers waiting for its owner, the server's limits.maxP2POffersPerProxy; try again later", p.fullName(), waiting)
	case len(st.attempts) >= maxAttempts:
		refusal = "the server has too many P2P attempts in flight; try again later"
	default:
		st.attempts[a.session] = a
	}
	st.mu.Unlock()
	if refusal != "" {
		sendTimeout(ss, &protocol.P2PAnswer{ID: m.ID, Code: protocol.CodeBadRequest, Error: refusal})
		return
	}
	// The owner learns who visits from the server, which authenticated
	// the visitor's session; whatever the visitor wrote there is replaced.
	fwd := *m
	fwd.Proxy, fwd.ServerUser = p.name, p.owner.user
	fwd.Visitor, fwd.VisitorUser, fwd.SessionID = ss.clientID, ss.user, a.session
	if err := s.forward(p.owner, &fwd); err != nil {
		s.p2pForget(a.session)
		sendTimeout(ss, &protocol.P2PAnswer{ID: m.ID, Code: protocol.CodeBadRequest, Error: "the owner of proxy " + p.fullName() + " cannot be reached: " + err.Error()})
	}
}

func (s *Server) p2pForget(session string) {
	s.p2p.mu.Lock()
	delete(s.p2p.attempts, session)
	s.p2p.mu.Unlock()
}

func (s *Server) p2pLookup(session string) *attempt {
	s.p2p.mu.Lock()
	defer s.p2p.mu.Unlock()
	return s.p2p.attempts[session]
}

// p2pAnswer passes the owner's candidates to the visitor and starts both
// sides at the same moment: each is told to wait so that, given half its
// round trip time to the server, both begin together.
func (s *Server) p2pAnswer(ss *session, m *protocol.P2PAnswer) {
	a := s.p2pLookup(m.SessionID)
	if a == nil || a.owner != ss {
		ss.log.Debug("P2P answer for an unknown attempt", "session", m.SessionID)
		return
	}
	if m.Error != "" {
		s.p2pForget(a.session)
		s.forward(a.visitor, &protocol.P2PAnswer{ID: a.offerID, Code: m.Code, Error: m.Error})
		return
	}
	s.p2p.mu.Lock()
	a.ownerNAT = nat.Known(m.NAT)
	a.answered = true
	s.p2p.mu.Unlock()
	rttV, rttO := a.visitor.hb.Stats().LastRTT, a.owner.hb.Stats().LastRTT
	base := max(rttV, rttO)/2 + 20*time.Millisecond
	dv, do := base-rttV/2, base-rttO/2
	if err := s.forward(a.visitor, &protocol.P2PAnswer{ID: a.offerID, SessionID: a.session, NAT: m.NAT, Sealed: m.Sealed, DelayMs: dv.Milliseconds()}); err != nil {
		s.p2pForget(a.session) // the visitor will not punch: neither should the owner
		return
	}
	sendTimeout(a.owner, &protocol.P2PGo{SessionID: a.session, DelayMs: do.Milliseconds()})
}

// p2pAuth forwards the key exchange of an attempt (shares, confirmation
// tags, sealed candidates) to the attempt's other client, unread: only the
// two clients can open it.
func (s *Server) p2pAuth(ss *session, m *protocol.P2PAuth) {
	a := s.p2pLookup(m.SessionID)
	switch {
	case a == nil:
		ss.log.Debug("P2P auth for an unknown attempt", "session", m.SessionID)
	case ss == a.owner:
		fwd := *m
		fwd.ID = a.offerID
		if s.forward(a.visitor, &fwd) != nil {
			s.p2pForget(a.session)
		}
	case ss == a.visitor:
		fwd := *m
		fwd.ID = ""
		if s.forward(a.owner, &fwd) != nil {
			s.p2pForget(a.session)
		}
	}
}

// p2pResult records the visitor's outcome of an attempt in the tally.
func (s *Server) p2pResult(ss *session, m *protocol.P2PResult) {
	a := s.p2pLookup(m.SessionID)
	if a == nil || (ss != a.visitor && ss != a.owner) {
		return
	}
	if ss == a.owner {
		ss.log.Debug("P2P result of the owner", "session", m.SessionID, "outcome", m.Outcome, "path", pathKind(m.Path), "error", m.Error)
		s.p2p.mu.Lock()
		a.ownerPath = pathKind(m.Path)
		s.p2p.mu.Unlock()
		return
	}
	s.p2pForget(a.session)
	st := s.p2p
	st.mu.Lock()
	if m.NAT != "" {
		a.visitorNAT = m.NAT
	}
	key := natPair{Visitor: nat.Known(a.visitorNAT), Owner: nat.Known(a.ownerNAT)}
	path := pathKind(m.Path)
	transport := transportKind(m.Transport)
	ps := st.pairs[key]
	if ps == nil {
		ps = &PairStats{VisitorNAT: key.Visitor, OwnerNAT: key.Owner}
		st.pairs[key] = ps
	}
	ps.Attempts++
	switch m.Outcome {
	case "lan":
		ps.LAN++
		ps.totalMs += m.ElapsedMs
		if transport == "tcp" {
			ps.TCP++
		}
	case "direct":
		ps.Direct++
		ps.totalMs += m.ElapsedMs
		if path == "mapped" || a.ownerPath == "mapped" {
			ps.Mapped++
			path = "mapped"
		}
		if transport == "tcp" {
			ps.TCP++
		}
	default:
		ps.Relay++
	}
	if n := ps.LAN + ps.Direct; n > 0 {
		ps.AvgToDirectMs = float64(ps.totalMs) / float64(n)
	}
	st.mu.Unlock()
	s.metrics.P2PResult(key.Visitor, key.Owner, m.Outcome, time.Duration(max(m.ElapsedMs, 0))*time.Millisecond)
	args := []any{"proxy", a.proxy, "type", a.typ, "visitor", a.visitor.key().String(), "owner", a.owner.key().String(),
		"visitor_nat", key.Visitor, "owner_nat", key.Owner, "outcome", m.Outcome, "elapsed", time.Duration(m.ElapsedMs) * time.Millisecond, "packets", m.Packets}
	if m.Outcome == "lan" || m.Outcome == "direct" {
		args = append(args, "path", path, "transport", transport)
	}
	if m.Error != "" {
		args = append(args, "why_not_direct", m.Error)
	}
	ss.log.Info("P2P attempt", args...)
}

// transportKind is "tcp" or "udp" (the empty transport of older clients).
func transportKind(s string) string {
	if s == "tcp" {
		return "tcp"
	}
	return "udp"
}

// pathKinds are the candidate kinds a P2PResult.path may name.
var pathKinds = map[string]bool{"host": true, "srflx": true, "prflx": true, "predicted": true, "mapped": true}

// pathKind is s if it names a candidate kind, else "unknown": it comes
// from a client.
func pathKind(s string) string {
	if pathKinds[s] {
		return s
	}
	return "unknown"
}

// P2PTally returns the outcomes per pair of NAT behaviours, sorted.
func (s *Server) P2PTally() []PairStats {
	st := s.p2p
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]PairStats, 0, len(st.pairs))
	for _, p := range st.pairs {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].VisitorNAT != out[j].VisitorNAT {
			return out[i].VisitorNAT < out[j].VisitorNAT
		}
		return out[i].OwnerNAT < out[j].OwnerNAT
	})
	return out
}

// TallyTable renders the tally as a text table.
func TallyTable(rows []PairStats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-16s %-16s %8s %5s %7s %6s %5s %6s %14s\n", "visitor NAT", "owner NAT", "attempts", "lan", "direct", "mapped", "tcp", "relay", "avg to direct")
	for _, r := range rows {
		avg := "-"
		if r.LAN+r.Direct > 0 {
			avg = (time.Duration(r.AvgToDirectMs * float64(time.Millisecond))).Round(time.Millisecond).String()
		}
		fmt.Fprintf(&b, "%-16s %-16s %8d %5d %7d %6d %5d %6d %14s\n", r.VisitorNAT, r.OwnerNAT, r.Attempts, r.LAN, r.Direct, r.Mapped, r.TCP, r.Relay, avg)
	}
	return b.String()
}

// logTally writes the tally to the log, one line per row of the table.
func (s *Server) logTally() {
	rows := s.P2PTally()
	if len(rows) == 0 {
		return
	}
	for _, line := range strings.Split(strings.TrimRight(TallyTable(rows), "\n"), "\n") {
		s.log.Log(context.Background(), slog.LevelInfo, "P2P tally | "+line)
	}
}
