package xtcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
	kcp "github.com/xtaci/kcp-go/v5"
)

// Session is an xtcp session: yamux streams over KCP over a Link, whose
// carriers (a punched UDP path, a punched TCP connection, the server's
// relay) may change while the session runs. The visitor is the yamux
// client; either side may open streams.
//
// A Session owns its link and the link its carriers: Close (or the
// session's death) closes them. Call Close even after Done: it waits for
// the session's goroutines.
type Session struct {
	link *Link
	udp  *UDPCarrier // the one carrier of a DialKCP/AcceptKCP session; nil on a link of the caller's
	kcp  *kcp.UDPSession
	rc   *readTracker
	y    *yamux.Session
	cfg  SessionConfig
	log  *slog.Logger

	done      chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	cause     error
	wg        sync.WaitGroup
}

// DialKCP starts the visitor's end of an xtcp session with the peer at
// remote (PunchResult.Remote) over conn, the socket Punch used, as the one
// carrier of a link that ends with it. key is the attempt key
// (PunchConfig.Key) and session the punch's session ID; both must be the
// owner's.
//
// On success the Session owns conn; on an invalid cfg conn is untouched
// and still the caller's. KCP needs no handshake, so DialKCP returns at
// once.
func DialKCP(conn *net.UDPConn, remote netip.AddrPort, key []byte, session SessionID, cfg SessionConfig) (*Session, error) {
	return newSession(conn, remote, key, session, RoleVisitor, cfg)
}

// AcceptKCP starts the owner's end of an xtcp session; see DialKCP. It
// returns at once: the visitor's streams arrive through Session.Accept.
// Only packets from remote that authenticate reach KCP.
func AcceptKCP(conn *net.UDPConn, remote netip.AddrPort, key []byte, session SessionID, cfg SessionConfig) (*Session, error) {
	return newSession(conn, remote, key, session, RoleOwner, cfg)
}

func newSession(conn *net.UDPConn, remote netip.AddrPort, key []byte, session SessionID, role Role, cfg SessionConfig) (*Session, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	uc, err := NewUDPCarrier(conn, remote, key, session, role, PayloadKCP, cfg)
	if err != nil {
		return nil, err
	}
	l, err := NewLink(LinkConfig{Logger: cfg.Logger})
	if err != nil {
		uc.Close()
		return nil, err
	}
	if err := l.Attach(CarrierUDP, uc); err != nil {
		return nil, err
	}
	// Both ends derive the same conversation ID; KCP drops other ones.
	conv := binary.BigEndian.Uint32(deriveKey(key, session, infoKCPConv, 4))
	s, err := NewLinkSession(l, role, conv, cfg)
	if err != nil {
		l.Close()
		return nil, err
	}
	s.udp = uc
	s.log = s.log.With("peer", remote)
	s.log.Info("xtcp session started", "session", session)
	return s, nil
}

// NewLinkSession starts an xtcp session over l, which it owns from then on
// (Close closes it; the session ends when the link does). conv is KCP's
// conversation ID, the same on both ends. The caller attaches carriers to
// the link before or after.
func NewLinkSession(l *Link, role Role, conv uint32, cfg SessionConfig) (*Session, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if !role.valid() {
		return nil, fmt.Errorf("xtcp: invalid role %d", uint8(role))
	}
	l.kcp.Store(true) // before the first carrier: see resend.go
	pc := &kcpPacketConn{l: l, raddr: linkAddr}
	// ownConn=false: kcp-go must never close the link; the Session does.
	ks, err := kcp.NewConn4(conv, pc.raddr, nil, 0, 0, false, pc)
	if err != nil {
		return nil, fmt.Errorf("xtcp: kcp: %w", err)
	}
	kc := cfg.KCP
	ks.SetNoDelay(b2i(kc.NoDelay), int(kc.Interval/time.Millisecond), kc.FastResend, b2i(!kc.CongestionControl))
	// Over a reliable stream (the relay, a punched TCP connection) nothing
	// is lost while the stream lives, but its queues make the RTT swing:
	// KCP's 30 ms nodelay RTO and fast resend would send much of the data
	// twice. There it runs with the 100 ms minimum RTO and RTO doubling,
	// and no fast resend; over UDP as configured.
	tune := func(k CarrierKind) {
		if k == CarrierRelay || k == CarrierTCP {
			ks.SetNoDelay(0, int(kc.Interval/time.Millisecond), 0, b2i(!kc.CongestionControl))
		} else {
			ks.SetNoDelay(b2i(kc.NoDelay), int(kc.Interval/time.Millisecond), kc.FastResend, b2i(!kc.CongestionControl))
		}
	}
	l.tuner.Store(&tune)
	tune(l.Current())
	ks.SetWindowSize(kc.SendWindow, kc.RecvWindow)
	ks.SetMtu(kc.MTU)
	ks.SetStreamMode(kc.StreamMode)
	ks.SetACKNoDelay(kc.AckNoDelay)
	ks.SetWriteDelay(false)

	rc := &readTracker{UDPSession: ks, start: time.Now()}
	ycfg := yamux.DefaultConfig()
	ycfg.AcceptBacklog = cfg.AcceptBacklog
	ycfg.EnableKeepAlive = false // Session.stallCheck pings
	// A ping waits this long for its answer; frame writes too.
	ycfg.ConnectionWriteTimeout = cfg.KeepaliveTimeout
	ycfg.MaxStreamWindowSize = cfg.MaxStreamWindow
	ycfg.StreamOpenTimeout = 0 // the carriers' keepalives find dead peers
	ycfg.LogOutput = nil
	ycfg.Logger = yamuxLogger{cfg.Logger}
	mk := yamux.Client
	if role == RoleOwner {
		mk = yamux.Server
	}
	y, err := mk(rc, ycfg)
	if err != nil {
		ks.Close()
		return nil, fmt.Errorf("xtcp: yamux: %w", err)
	}
	s := &Session{link: l, kcp: ks, rc: rc, y: y, cfg: cfg, log: cfg.Logger.With("role", role), done: make(chan struct{})}
	s.wg.Add(2)
	go s.watch()
	go s.stallCheck()
	return s, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Open opens a stream to the peer.
func (s *Session) Open() (net.Conn, error) {
	st, err := s.y.OpenStream()
	if err != nil {
		return nil, s.streamErr(err)
	}
	return st, nil
}

// Accept waits for the next stream the peer opens.
func (s *Session) Accept() (net.Conn, error) {
	st, err := s.y.AcceptStream()
	if err != nil {
		return nil, s.streamErr(err)
	}
	return st, nil
}

// streamErr turns yamux's "session shutdown" into the session's cause.
func (s *Session) streamErr(err error) error {
	if errors.Is(err, yamux.ErrSessionShutdown) {
		<-s.done
		return s.Err()
	}
	return err
}

// Close closes the session and its socket, tells the peer (best effort:
// two Close packets) and waits for the session's goroutines. Streams are
// cut; bytes KCP has not delivered yet are lost, so close streams and wait
// for the peer's answer first where that matters. Close is safe to call
// more than once; it returns nil.
func (s *Session) Close() error {
	s.shutdown(ErrClosed)
	s.wg.Wait()
	s.link.Close()
	return nil
}

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended (ErrClosed, ErrPeerClosed, an error
// wrapping ErrPathDead, ...), or nil while it runs.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cause
}

// Remote returns the peer's address on the path of a DialKCP/AcceptKCP
// session; the zero AddrPort on a session of NewLinkSession.
func (s *Session) Remote() netip.AddrPort {
	if s.udp == nil {
		return netip.AddrPort{}
	}
	return s.udp.Remote()
}

// Stats returns the path's counters of a DialKCP/AcceptKCP session; zero
// on a session of NewLinkSession (see Link.Stats).
func (s *Session) Stats() PathStats {
	if s.udp == nil {
		return PathStats{}
	}
	return s.udp.Stats()
}

// Link returns the session's link, to attach carriers to.
func (s *Session) Link() *Link { return s.link }

// NumStreams returns the number of open streams.
func (s *Session) NumStreams() int { return s.y.NumStreams() }

// shutdown ends the session with cause if it is the first.
func (s *Session) shutdown(cause error) {
	s.closeOnce.Do(func() {
		if lc := s.link.Err(); lc != nil {
			cause = lc // the link died first: that is the story
		}
		s.mu.Lock()
		s.cause = cause
		s.mu.Unlock()
		s.link.fail(cause) // ErrClosed: the carriers tell the peer
		s.y.Close()        // closes the KCP session too
		s.kcp.Close()
		close(s.done)
		s.log.Info("xtcp session ended", "cause", cause)
	})
}

// watch ends the session when the path or yamux does.
func (s *Session) watch() {
	defer s.wg.Done()
	select {
	case <-s.link.done:
		s.shutdown(s.link.Err())
	case <-s.y.CloseChan():
		s.shutdown(s.rc.cause())
	case <-s.done:
	}
}

// stallCheck pings through yamux, KCP and the path. The path keepalive
// alone would miss KCP stalling while small control packets still pass
// (an MTU black hole, for one). A ping that goes unanswered while bytes
// keep arriving through KCP is late behind bulk data, not lost.
func (s *Session) stallCheck() {
	defer s.wg.Done()
	// The link's interval (Link.SetKeepaliveInterval) once set, so that
	// the ping follows the path keepalive it backs up.
	interval := func() time.Duration {
		if iv := s.link.KeepaliveInterval(); iv > 0 {
			return iv
		}
		return s.cfg.KeepaliveInterval
	}
	t := time.NewTimer(interval())
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.done:
			return
		}
		t.Reset(interval())
		start := time.Now()
		_, err := s.y.Ping()
		if err == nil {
			continue
		}
		if !errors.Is(err, yamux.ErrTimeout) {
			return // shut down
		}
		if quiet := s.rc.quiet(); quiet < s.cfg.KeepaliveTimeout {
			continue
		}
		if s.link.Silence() >= interval() {
			continue // the carriers' keepalives will tell the story
		}
		err = fmt.Errorf("%w: keepalives pass but KCP delivers nothing: no answer to a ping within %v (MTU black hole?)",
			ErrPathDead, time.Since(start).Round(time.Millisecond))
		if s.link.DropCurrent(err) {
			s.log.Info("xtcp carrier dropped; another one carries on", "cause", err)
			continue
		}
		s.shutdown(err)
		return
	}
}

// readTracker is the KCP session as yamux sees it, noting when bytes last
// arrived.
type readTracker struct {
	*kcp.UDPSession
	start time.Time
	last  atomic.Int64 // ns since start
	errMu sync.Mutex
	err   error // first read or write error

	hdr  [yamuxHeaderLen]byte
	held []byte // a data frame header waiting for its body
}

func (r *readTracker) Read(b []byte) (int, error) {
	n, err := r.UDPSession.Read(b)
	if n > 0 {
		r.last.Store(int64(time.Since(r.start)))
	}
	if err != nil {
		r.setErr("read", err)
	}
	return n, err
}

// Write passes yamux's writes to KCP. yamux writes a data frame as two
// writes, header then body; the header of a frame with a body is held and
// sent with the body in one KCP write, so a small frame is one packet,
// not two. Only yamux's send loop writes, one frame at a time.
func (r *readTracker) Write(b []byte) (int, error) {
	if r.held == nil && len(b) == yamuxHeaderLen && b[0] == 0 && b[1] == yamuxTypeData &&
		binary.BigEndian.Uint32(b[8:12]) > 0 {
		r.held = append(r.hdr[:0], b...)
		return len(b), nil
	}
	var n int
	var err error
	if r.held != nil {
		n, err = r.UDPSession.WriteBuffers([][]byte{r.held, b})
		n -= len(r.held)
		r.held = nil
	} else {
		n, err = r.UDPSession.Write(b)
	}
	if err != nil {
		r.setErr("write", err)
	}
	return max(n, 0), err
}

// yamux's frame header (its spec.md): version 0, type (0 = data), flags,
// stream ID, length.
const (
	yamuxHeaderLen = 12
	yamuxTypeData  = 0
)

func (r *readTracker) setErr(op string, err error) {
	r.errMu.Lock()
	if r.err == nil {
		r.err = fmt.Errorf("xtcp: kcp %s: %w", op, err)
	}
	r.errMu.Unlock()
}

// cause says why yamux stopped, as far as the KCP session knows.
func (r *readTracker) cause() error {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if r.err != nil {
		return r.err
	}
	return errors.New("xtcp: yamux session ended (protocol error or write timeout)")
}

func (r *readTracker) quiet() time.Duration {
	return time.Since(r.start) - time.Duration(r.last.Load())
}

// kcpPacketConn is the net.PacketConn kcp-go runs on: it reads and writes
// through the link, whose carriers let only authentic packets from the
// peer through and seal every packet they send.
type kcpPacketConn struct {
	l     *Link
	raddr fixedAddr
}

// fixedAddr is the peer's address with its string made once: kcp-go's
// read loop calls String on every packet's source.
type fixedAddr struct {
	*net.UDPAddr
	s string
}

// linkAddr stands for the peer, wherever its carriers are.
var linkAddr = fixedAddr{&net.UDPAddr{}, "xtcp-link"}

func (c *kcpPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, err := c.l.Recv(b)
	if err != nil {
		return 0, nil, err
	}
	return n, c.raddr, nil
}

func (c *kcpPacketConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	if err := c.l.Send(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Close does nothing: the Session closes the link.
func (c *kcpPacketConn) Close() error                     { return nil }
func (c *kcpPacketConn) LocalAddr() net.Addr              { return c.raddr }
func (c *kcpPacketConn) SetDeadline(time.Time) error      { return nil }
func (c *kcpPacketConn) SetReadDeadline(time.Time) error  { return nil }
func (c *kcpPacketConn) SetWriteDeadline(time.Time) error { return nil }

var _ net.PacketConn = (*kcpPacketConn)(nil)
var _ io.ReadWriteCloser = (*readTracker)(nil)

type yamuxLogger struct{ l *slog.Logger }

func (y yamuxLogger) Print(v ...any) { y.l.Debug(fmt.Sprint(v...), "component", "yamux") }
func (y yamuxLogger) Printf(format string, v ...any) {
	y.l.Debug(fmt.Sprintf(format, v...), "component", "yamux")
}
func (y yamuxLogger) Println(v ...any) { y.l.Debug(fmt.Sprint(v...), "component", "yamux") }
