// Package server is hops: it accepts hopc clients, authenticates them,
// keeps one mux session per client, opens the public ports of their proxies
// and carries every user connection to the client as a mux stream.
package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hopproxy/hop/pkg/acceptloop"
	"github.com/hopproxy/hop/pkg/admit"
	"github.com/hopproxy/hop/pkg/auth"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/drain"
	"github.com/hopproxy/hop/pkg/heartbeat"
	"github.com/hopproxy/hop/pkg/logging"
	"github.com/hopproxy/hop/pkg/metrics"
	"github.com/hopproxy/hop/pkg/mux"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/transport"
	"github.com/hopproxy/hop/pkg/webserver"
	"github.com/hopproxy/hop/pkg/xtcp/stunserver"
	"github.com/prometheus/client_golang/prometheus"
)

// Causes recorded for sessions the server ends; match them with errors.Is.
var (
	// ErrReplaced: a newer login of the same hopc process (same user,
	// client ID and identity key) replaced the session.
	ErrReplaced = errors.New("replaced by a new login of the same client (same user, client ID and identity key)")
	// ErrClientIDInUse: a login for a (user, client ID) with a live session
	// of another identity key was refused.
	ErrClientIDInUse = errors.New("client ID in use by a live session of another hopc process")
	// ErrShutdown: the server is shutting down.
	ErrShutdown = errors.New("server shutting down")
)

// Server is a running hops.
type Server struct {
	cfg         *config.ServerConfig // as started; see policy for the keys Reload changes
	live        atomic.Pointer[config.ServerConfig]
	reloadMu    sync.Mutex     // one Reload at a time
	level       *slog.LevelVar // of log, for Reload; nil when not set
	log         *slog.Logger
	tls         *tls.Config
	fingerprint string
	gate        *admit.Gate // concurrent handshakes, before TLS

	ln net.Listener

	mu       sync.Mutex
	closing  bool
	sessions map[clientKey]*session // by (user, client ID)
	proxies  map[proxyKey]*proxy    // by (user, proxy name)
	groups   map[string]*tcpGroup   // load-balancing groups by name
	history  history                // under mu, keyed user.clientID
	p2p      *p2pState
	stun     *stunserver.Server
	api      *webserver.Server
	started  time.Time
	node     string         // cfg.Node(): the node label of the metrics, nodeName of /api/serverinfo
	bgWG     sync.WaitGroup // API server and tally logger

	handlers sync.WaitGroup // one per accepted control connection
	users    drain.Set      // proxied user connections, for the drain
	acceptWG sync.WaitGroup
	connWG   sync.WaitGroup // one per proxied user connection

	vhost vhostState // http and https proxies

	reg     *prometheus.Registry // the server's own, never the default one
	metrics *metrics.Server

	// logLimit folds the lines a remote peer can repeat at will (failed
	// handshakes, rejected logins) into one summary per source and window.
	logLimit logging.Limiter
}

// New prepares a server; Listen binds it.
func New(cfg *config.ServerConfig, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tc, fp, err := transport.ServerTLS(cfg.Transport.TLS.CertFile, cfg.Transport.TLS.KeyFile)
	if err != nil {
		return nil, err
	}
	gate, err := admit.New(admit.Limits{Max: cfg.Limits.MaxHandshakes, PerIP: cfg.Limits.MaxHandshakesPerIP})
	if err != nil {
		return nil, err
	}
	node, err := cfg.Node()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, tls: tc, fingerprint: fp, gate: gate, node: node,
		sessions: map[clientKey]*session{}, proxies: map[proxyKey]*proxy{}, groups: map[string]*tcpGroup{}, history: newHistory(maxHistory), p2p: newP2PState(),
		started: time.Now()}
	s.live.Store(cfg)
	if err := s.newMetrics(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) keepalive() transport.KeepAlive {
	k := s.cfg.Transport.TCPKeepalive
	return transport.KeepAlive{Idle: k.Idle.Duration, Interval: k.Interval.Duration, Count: k.Count}
}

// Listen binds the control port.
func (s *Server) Listen(ctx context.Context) error {
	addr := net.JoinHostPort(s.cfg.BindAddr, strconv.Itoa(s.cfg.BindPort))
	ln, err := transport.Listen(ctx, addr, s.keepalive())
	if err != nil {
		return fmt.Errorf("listen on bindAddr:bindPort %s: %w", addr, err)
	}
	if err := s.startSTUN(); err != nil {
		ln.Close()
		return err
	}
	ln, err = s.listenVhost(ctx, ln) // a vhost port may share bindPort
	if err != nil {
		s.stun.Close()
		return err
	}
	s.ln = ln
	s.log.Info("listening", "addr", ln.Addr().String(), "node", s.node, "tls_sha256", s.fingerprint)
	return nil
}

// Addr is the control listener's address (after Listen).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts clients until ctx ends, then shuts down gracefully: it
// stops accepting, lets proxied connections finish for up to gracePeriod,
// then closes every session. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context) error {
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.startAPI(sctx); err != nil {
		s.ln.Close()
		s.stun.Close()
		s.closeVhost()
		return err
	}
	s.serveVhost()
	stopTally := make(chan struct{})
	s.bgWG.Add(1)
	go s.tallyLoop(stopTally)
	s.acceptWG.Add(1)
	acceptErr := make(chan error, 1)
	go func() {
		defer s.acceptWG.Done()
		acceptErr <- s.acceptLoop(sctx)
	}()
	var err error
	select {
	case <-ctx.Done():
	case err = <-acceptErr:
	}
	s.shutdown(s.cfg.GracePeriod.Duration)
	cancel()
	s.acceptWG.Wait()
	s.handlers.Wait()
	s.connWG.Wait()
	s.closeVhost()
	close(stopTally)
	if s.api != nil {
		s.api.Close()
	}
	s.bgWG.Wait()
	s.stun.Close()
	s.logTally()
	s.logLimit.Flush() // the counts of suppressed lines, before the process ends
	return err
}

// acceptLoop hands every control connection to handle until shutdown
// closes the listener; a failed accept (out of descriptors, say) is waited
// out and retried, never the end of hops.
func (s *Server) acceptLoop(ctx context.Context) error {
	return acceptloop.Serve(ctx, s.ln, func(c net.Conn) {
		s.handlers.Add(1)
		go func() {
			defer s.handlers.Done()
			s.handle(ctx, c)
		}()
	}, acceptloop.Options{Log: s.log.With("listener", "control")})
}

// shutdown is the two-phase stop: no new clients or user connections,
// then up to grace for the open ones, then everything closes.
func (s *Server) shutdown(grace time.Duration) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.closing = true
	proxies := make([]*proxy, 0, len(s.proxies))
	for _, p := range s.proxies {
		proxies = append(proxies, p)
	}
	groups := make([]*tcpGroup, 0, len(s.groups))
	for _, g := range s.groups {
		groups = append(groups, g)
	}
	s.mu.Unlock()
	s.ln.Close()
	waitVhost := s.drainVhost(grace)
	for _, p := range proxies {
		p.stopAccepting()
	}
	for _, g := range groups { // their members do not own the port
		g.ln.Close()
	}
	n := s.users.Count()
	if n > 0 {
		s.log.Info("shutting down: draining connections", "open", n, "grace", grace)
		if !s.users.WaitIdle(grace) {
			s.log.Warn("grace period over: closing remaining connections", "open", s.users.Count())
		}
	}
	waitVhost() // the http requests in flight, within the same grace
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	for _, ss := range sessions {
		ss.ms.CloseWithCause(ErrShutdown)
	}
	s.users.CloseAll()
}

// handle runs one client connection from TLS handshake to session end.
func (s *Server) handle(ctx context.Context, raw net.Conn) {
	leave, gerr := s.gate.Enter(raw.RemoteAddr())
	if gerr != nil { // over limits.maxHandshakes(PerIP): counted in the gate's Stats
		s.metrics.LoginsRefused.WithLabelValues(metrics.RefusalReason(gerr)).Inc()
		s.log.Debug("connection refused before TLS", "remote", raw.RemoteAddr().String(), "error", gerr)
		raw.Close()
		return
	}
	defer leave()
	remote := raw.RemoteAddr().String()
	log := s.log.With("remote", remote)
	deadline := time.Now().Add(s.cfg.Transport.HandshakeTimeout.Duration)
	raw.SetDeadline(deadline)
	// The first byte tells a TLS handshake (0x16) from a STUN Binding
	// request over TCP (first two bits 0), by which a client learns the
	// public mapping of a TCP port for TCP hole punching.
	var first [1]byte
	if _, err := io.ReadFull(raw, first[:]); err != nil {
		log.Debug("connection closed before its first byte", "error", err)
		raw.Close()
		return
	}
	if stunserver.IsSTUNFirstByte(first[0]) {
		err := s.stun.ServeStream(raw, io.MultiReader(bytes.NewReader(first[:]), raw), deadline)
		raw.Close()
		if err != nil {
			s.logLimit.Log(ctx, log, slog.LevelDebug, logging.Source(remote), "STUN over TCP not answered", "error", err)
		}
		return
	}
	raw = &prefixConn{Conn: raw, prefix: first[:]}
	tc := tls.Server(raw, s.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		level := slog.LevelInfo
		if errors.Is(err, io.EOF) {
			level = slog.LevelDebug // a port probe that connected and left
		}
		s.metrics.LoginsRefused.WithLabelValues(metrics.ReasonTLS).Inc()
		s.logLimit.Log(ctx, log, level, logging.Source(remote), "TLS handshake failed", "error", err)
		raw.Close()
		return
	}
	binding, err := transport.Binding(tc)
	if err != nil {
		log.Warn("TLS channel binding unavailable", "error", err)
		tc.Close()
		return
	}
	var sessionID string
	rw, done := s.loginOrProbe(ctx, tc, leave, log)
	if done { // a probe of heartbeat.interval = "auto", or nothing
		return
	}
	hello, welcome, err := auth.Server(rw, s.tokenFor, binding, s.decide)
	if err != nil {
		args := []any{"error", err}
		if hello != nil {
			args = append(args, "user", hello.User, "client", hello.ClientID)
		}
		s.metrics.LoginsRefused.WithLabelValues(metrics.RefusalReason(err)).Inc()
		s.logLimit.Log(ctx, log, slog.LevelWarn, logging.Source(remote), "login rejected", args...)
		tc.Close()
		return
	}
	sessionID = welcome.SessionID
	log = log.With("user", hello.User, "client", hello.ClientID)
	ms, err := mux.Server(tc, s.muxConfig())
	if err != nil {
		log.Error("mux session", "error", err)
		tc.Close()
		return
	}
	ctrl, err := ms.Accept() // bounded by the handshake deadline
	if err != nil {
		log.Warn("client opened no control stream", "error", err)
		ms.Close()
		return
	}
	raw.SetDeadline(time.Time{})
	leave() // logged in: no longer a handshake
	ss := newSession(s, hello, sessionID, ms, ctrl, log.With("session", sessionID))
	hex.Decode(ss.probeKey[:], []byte(welcome.ProbeKey))
	ss.conn = tc
	if err := s.register(ss); err != nil {
		// Shutting down, or (rarely) another process's login for this
		// client ID won the race since decide: its next try gets the
		// clear refusal at login.
		ss.log.Info("session refused after login", "cause", err)
		if errors.Is(err, ErrClientIDInUse) {
			s.metrics.LoginsRefused.WithLabelValues(metrics.ReasonClientIDInUse).Inc()
		} else {
			s.metrics.LoginsRefused.WithLabelValues(metrics.ReasonShuttingDown).Inc()
		}
		ss.ms.CloseWithCause(err)
		ss.ch.Close()
		ss.ms.Close()
		return
	}
	ss.log.Info("client logged in", "heartbeat_interval", time.Duration(hello.HeartbeatIntervalMs)*time.Millisecond,
		"identity", hex.EncodeToString(hello.IdentityKey[:8]))
	cause := ss.run()
	s.unregister(ss, cause)
	level := slog.LevelWarn
	if errors.Is(cause, mux.ErrPeerClosed) || errors.Is(cause, ErrShutdown) || errors.Is(cause, ErrReplaced) {
		level = slog.LevelInfo
	}
	ss.log.Log(context.Background(), level, "client disconnected", "cause", cause)
}

func (s *Server) muxConfig() mux.Config {
	return mux.Config{
		KeepaliveInterval:  s.cfg.Mux.KeepaliveInterval.Duration,
		KeepaliveTimeout:   s.cfg.Mux.KeepaliveTimeout.Duration,
		MaxStreamWindow:    uint32(s.cfg.Mux.MaxStreamWindow),
		MaxStreams:         s.cfg.Limits.MaxStreamsPerSession,
		StreamCloseTimeout: s.cfg.Mux.StreamCloseTimeout.Duration,
		Logger:             s.log,
	}
}

// decide is the login policy, applied once the client proved the token
// and signed with its identity key.
func (s *Server) decide(h *protocol.ClientHello) (*protocol.Welcome, *protocol.Error) {
	hb := s.cfg.Heartbeat
	if hb.Timeout.Duration > 0 && h.HeartbeatIntervalMs == 0 {
		return nil, &protocol.Error{Code: protocol.CodeHeartbeatRequired, Message: fmt.Sprintf(
			"this server requires an app heartbeat (its heartbeat.timeout is %v) but the client has heartbeat.interval = \"0s\"; set heartbeat.interval to %v or less in hopc's config",
			hb.Timeout.Duration, hb.Timeout.Duration/3)}
	}
	s.mu.Lock()
	closing := s.closing
	old := s.sessions[clientKey{h.User, h.ClientID}]
	s.mu.Unlock()
	if closing {
		return nil, &protocol.Error{Code: protocol.CodeShuttingDown, Message: "server is shutting down"}
	}
	if old != nil && !old.identity.Equal(ed25519.PublicKey(h.IdentityKey)) {
		return nil, s.clientIDInUse(h.User, h.ClientID)
	}
	var id [6]byte
	rand.Read(id[:])
	pk := newProbeKey()
	return &protocol.Welcome{
		SessionID:              hex.EncodeToString(id[:]),
		HeartbeatIntervalMs:    hb.Interval.Milliseconds(),
		HeartbeatTimeoutMs:     hb.Timeout.Milliseconds(),
		ProbeKey:               hex.EncodeToString(pk[:]),
		MaxHeartbeatIntervalMs: hb.MaxInterval.Milliseconds(),
	}, nil
}

// clientIDInUse is the refusal of a login for a (user, client ID) that a
// live session of another identity key holds.
func (s *Server) clientIDInUse(user, clientID string) *protocol.Error {
	until := fmt.Sprintf("misses its heartbeat (hops' heartbeat.timeout is %v)", s.cfg.Heartbeat.Timeout.Duration)
	if s.cfg.Heartbeat.Timeout.Duration <= 0 {
		until = "stops answering the mux keepalive"
	}
	return &protocol.Error{Code: protocol.CodeClientIDInUse, Message: fmt.Sprintf(
		"client ID %q of user %q is held by a live session of another hopc process (another identity key); hops frees it when that session ends or %s, and a retry gets in then. If two hopc run with this clientID on purpose, give each its own (or leave clientID unset: each process then makes one)",
		clientID, user, until)}
}

// register makes ss the session of its (user, client ID). An older session
// of the same identity key (the same hopc process reconnecting) is
// replaced at once and waited out, so its ports are free for ss; one of
// another key stays, and ss is refused.
func (s *Server) register(ss *session) error {
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return ErrShutdown
		}
		old := s.sessions[ss.key()]
		if old == nil {
			s.sessions[ss.key()] = ss
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		if !old.identity.Equal(ss.identity) {
			return ErrClientIDInUse
		}
		ss.log.Info("replacing the previous session of this client", "old_session", old.id)
		old.ms.CloseWithCause(ErrReplaced)
		<-old.ended
	}
}

func (s *Server) unregister(ss *session, cause error) {
	info := ss.info()
	info.proxies, info.types = ss.lastProxies() // before they close
	ss.closeProxies()
	s.mu.Lock()
	if s.sessions[ss.key()] == ss {
		delete(s.sessions, ss.key())
	}
	s.history.record(ss.key(), cause, time.Now(), info)
	s.mu.Unlock()
	s.metrics.SessionLosses.WithLabelValues(lossCause(cause)).Inc()
	close(ss.ended)
}

// lossCause is the cause label of hop_session_losses_total for why a
// session ended.
func lossCause(err error) string {
	if c := metrics.LinkCause(err); c != "" {
		return c
	}
	switch {
	case errors.Is(err, ErrShutdown):
		return metrics.CauseServerShutdown
	case errors.Is(err, ErrReplaced):
		return metrics.CauseReplaced
	case errors.Is(err, mux.ErrPeerClosed):
		return metrics.CauseClientClosed
	}
	return metrics.CauseOther
}

// ClientHistory is what the server remembers of a client's ended sessions.
type ClientHistory struct {
	User, ClientID string
	Sessions       int       // sessions that ended
	LastCause      error     // why the last one ended
	LastEnd        time.Time // when
	// Of the last ended session: the client's address, its NAT class
	// ("" if it reported none) and when it logged in.
	Addr        string
	NAT         string
	ConnectedAt time.Time
	// Losses are the last maxLosses session ends, oldest first.
	Losses []Loss
	// Proxies are the proxies the last ended session had registered,
	// sorted by name, and ProxyTypes their types: while the client is
	// away they are its offline proxies (GET /api/proxies, hop_proxies).
	Proxies, ProxyTypes []string
}

// Loss is one ended session of a client: when, and why.
type Loss struct {
	At    time.Time `json:"at"`
	Cause string    `json:"cause"`
}

// History returns a copy of the ended-session history per client, keyed
// user.clientID (the client ID alone for the empty user), for the
// maxHistory clients whose last session ended most recently.
func (s *Server) History() map[string]ClientHistory {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.history.snapshot()
}

// HandshakeStats reports the connections in TLS and login now and those
// refused over limits.maxHandshakes and limits.maxHandshakesPerIP.
func (s *Server) HandshakeStats() admit.Stats { return s.gate.Stats() }

// heartbeatConfig is the server's own heartbeat.
func (s *Server) heartbeatConfig() heartbeat.Config {
	return heartbeat.Config{Interval: s.cfg.Heartbeat.Interval.Duration, Timeout: s.cfg.Heartbeat.Timeout.Duration}
}

// prefixConn is a connection whose first bytes were read already: Read
// returns them before the rest.
type prefixConn struct {
	net.Conn
	prefix []byte
}

// NetConn is the accepted connection, whose TCP keepalive idle probes
// and "auto" heartbeats change (transport.SetKeepAlive).
func (c *prefixConn) NetConn() net.Conn { return c.Conn }

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
