// Package mux runs hop's control session: one yamux session over the
// TLS connection between hopc and hops, on which the control channel and
// every proxied connection are streams.
//
// The mux keepalive is yamux's own ping, driven here so that its failure is
// reported as ErrKeepaliveTimeout (a ping that goes unanswered while bytes
// keep arriving is late behind bulk data, not lost, and does not count), distinct from the app heartbeat (package
// heartbeat) and from errors of the connection itself (ConnError), which
// include the kernel's TCP keepalive error.
//
// Bounds: at most Config.MaxStreams streams opened by the peer are open at
// once (Accept waits for a slot; meanwhile yamux queues at most
// AcceptBacklog new streams, each with the initial 256 KiB window, and resets
// the rest). A stream's Close is a full close, as for a TCP connection: it
// sends FIN, then discards whatever the peer still sends until its FIN, a
// reset or Config.StreamCloseTimeout, and frees the stream's buffer; CloseWrite
// is the half-close. When the session ends, nothing it buffered stays
// reachable from it.
package mux

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrKeepaliveTimeout: a mux keepalive ping got no answer within
	// Config.KeepaliveTimeout.
	ErrKeepaliveTimeout = errors.New("mux keepalive timeout")
	// ErrClosed: the session was closed locally without another cause.
	ErrClosed = errors.New("session closed")
	// ErrPeerClosed: the peer closed the connection cleanly.
	ErrPeerClosed = errors.New("peer closed the connection")
)

// ConnError is a read or write error of the connection under the session
// (a reset, or the kernel's TCP keepalive giving up: "connection timed out").
type ConnError struct {
	Op  string // "read" or "write"
	Err error
}

func (e *ConnError) Error() string { return "control connection " + e.Op + ": " + e.Err.Error() }
func (e *ConnError) Unwrap() error { return e.Err }

// Config tunes the session. The zero Config is not valid: start from
// DefaultConfig.
type Config struct {
	// KeepaliveInterval between mux pings; 0 disables the mux keepalive.
	KeepaliveInterval time.Duration
	// KeepaliveTimeout is how long a ping may stay unanswered. It is also
	// yamux's ConnectionWriteTimeout, the limit for one frame write.
	KeepaliveTimeout time.Duration
	// MaxStreamWindow is the per-stream receive window in bytes.
	MaxStreamWindow uint32
	// MaxStreams is the most streams opened by the peer that may be open at
	// once (limits.maxStreamsPerSession). A stream counts from Accept until
	// its Close has finished (the peer's FIN, a reset or StreamCloseTimeout).
	MaxStreams int
	// StreamCloseTimeout is how long a closed or half-closed stream waits
	// for the peer's FIN before it is reset and freed (mux.streamCloseTimeout).
	// yamux starts it at this side's FIN, half-close included, so it also
	// bounds how long the answer to a half-closed request may take.
	StreamCloseTimeout time.Duration
	// Logger receives yamux's own messages at debug level; nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns hop's defaults.
func DefaultConfig() Config {
	return Config{KeepaliveInterval: 15 * time.Second, KeepaliveTimeout: 10 * time.Second, MaxStreamWindow: 2 << 20,
		MaxStreams: 1024, StreamCloseTimeout: 60 * time.Second}
}

// maxBacklog caps yamux's AcceptBacklog: streams the peer opened that wait
// for Accept, each able to hold the initial 256 KiB window. It also caps
// the streams this side has opened and the peer not yet acknowledged.
const maxBacklog = 128

func (c Config) backlog() int { return min(c.MaxStreams, maxBacklog) }

// Validate reports a config yamux would refuse.
func (c Config) Validate() error {
	if c.KeepaliveInterval < 0 {
		return fmt.Errorf("mux.keepaliveInterval must not be negative")
	}
	if c.KeepaliveTimeout <= 0 {
		return fmt.Errorf("mux.keepaliveTimeout must be positive")
	}
	if c.MaxStreamWindow < 256<<10 {
		return fmt.Errorf("mux.maxStreamWindow must be at least 262144")
	}
	if c.MaxStreams < 1 {
		return fmt.Errorf("limits.maxStreamsPerSession must be at least 1, not %d", c.MaxStreams)
	}
	if c.StreamCloseTimeout <= 0 {
		return fmt.Errorf("mux.streamCloseTimeout must be positive, not %v", c.StreamCloseTimeout)
	}
	return nil
}

func (c Config) yamux() *yamux.Config {
	y := yamux.DefaultConfig()
	y.EnableKeepAlive = false // driven by Session.keepalive
	y.ConnectionWriteTimeout = c.KeepaliveTimeout
	y.MaxStreamWindowSize = c.MaxStreamWindow
	y.StreamOpenTimeout = 30 * time.Second
	y.StreamCloseTimeout = c.StreamCloseTimeout
	y.AcceptBacklog = c.backlog()
	y.LogOutput = nil
	l := c.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	y.Logger = yamuxLogger{l}
	return y
}

type yamuxLogger struct{ l *slog.Logger }

func (y yamuxLogger) Print(v ...any) { y.l.Debug(fmt.Sprint(v...), "component", "yamux") }
func (y yamuxLogger) Printf(format string, v ...any) {
	y.l.Debug(fmt.Sprintf(format, v...), "component", "yamux")
}
func (y yamuxLogger) Println(v ...any) { y.l.Debug(fmt.Sprint(v...), "component", "yamux") }

// Session is a yamux session with a recorded cause of death.
type Session struct {
	// y is the yamux session while it runs; nil once it has ended, so that
	// whoever still holds the Session does not pin its streams' buffers.
	y      atomic.Pointer[yamux.Session]
	closed <-chan struct{} // y's CloseChan
	conn   *trackedConn
	cfg    Config
	slots  chan struct{} // one per open stream accepted from the peer

	drainMu  sync.Mutex
	drainEnd bool           // Close is waiting for drains: start no more
	drains   sync.WaitGroup // closed streams waiting for the peer's FIN

	closeOnce sync.Once
	mu        sync.Mutex
	cause     error
	done      chan struct{}
	wg        sync.WaitGroup

	// The keepalive runs on a timer, not a goroutine of its own (hops
	// holds a session per client): kaT fires every kaEvery and pings;
	// kaStop, set once the session ended, keeps callbacks from starting.
	kaMu    sync.Mutex
	kaT     *time.Timer // nil with the keepalive off
	kaEvery time.Duration
	kaStop  bool
}

// SetKeepaliveInterval changes the time between mux pings of a running
// session (heartbeat.interval = "auto" makes the mux keepalive follow the
// heartbeat); the keepalive timeout stays. It does nothing on a session
// whose keepalive is off (KeepaliveInterval 0) or ended, and d <= 0 is
// ignored.
func (s *Session) SetKeepaliveInterval(d time.Duration) {
	if d <= 0 {
		return
	}
	s.kaMu.Lock()
	defer s.kaMu.Unlock()
	if s.kaT == nil || s.kaStop {
		return
	}
	s.kaEvery = d
	s.kaT.Reset(d)
}

// Client starts the client side of a session over conn.
func Client(conn net.Conn, cfg Config) (*Session, error) { return start(conn, cfg, yamux.Client) }

// Server starts the server side of a session over conn.
func Server(conn net.Conn, cfg Config) (*Session, error) { return start(conn, cfg, yamux.Server) }

func start(conn net.Conn, cfg Config, mk func(io.ReadWriteCloser, *yamux.Config) (*yamux.Session, error)) (*Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: conn}
	tc.touch()
	y, err := mk(tc, cfg.yamux())
	if err != nil {
		return nil, err
	}
	s := &Session{closed: y.CloseChan(), conn: tc, cfg: cfg, slots: make(chan struct{}, cfg.MaxStreams), done: make(chan struct{})}
	s.y.Store(y)
	s.wg.Add(1)
	go s.watch()
	if cfg.KeepaliveInterval > 0 {
		s.kaMu.Lock()
		s.kaEvery = cfg.KeepaliveInterval
		s.kaT = time.AfterFunc(s.kaEvery, s.keepalive)
		s.kaMu.Unlock()
	}
	return s, nil
}

// watch records why yamux stopped when nobody else did.
func (s *Session) watch() {
	defer s.wg.Done()
	<-s.closed
	// No keepalive starts from now; one under way was counted in wg
	// before this, so Close's Wait waits for it too.
	s.kaMu.Lock()
	s.kaStop = true
	if s.kaT != nil {
		s.kaT.Stop()
	}
	s.kaMu.Unlock()
	s.setCause(s.conn.firstErr())
	s.y.Store(nil)
	close(s.done)
}

// keepalive is the timer's callback: one mux ping, then the next one
// scheduled, unless the session ends.
func (s *Session) keepalive() {
	s.kaMu.Lock()
	if s.kaStop {
		s.kaMu.Unlock()
		return
	}
	s.wg.Add(1) // watch is still in wg: this never races Close's Wait at zero
	s.kaMu.Unlock()
	defer s.wg.Done()
	y := s.y.Load()
	if y == nil {
		return
	}
	start := time.Now()
	if _, err := y.Ping(); err != nil {
		if !errors.Is(err, yamux.ErrTimeout) {
			return
		}
		// A ping stuck behind bulk data on a saturated link is late, not
		// lost: the link is alive while bytes keep arriving.
		if silence := time.Since(s.LastRead()); silence >= s.cfg.KeepaliveTimeout {
			s.CloseWithCause(fmt.Errorf("%w: no answer to a mux ping within %v and nothing else received meanwhile (mux.keepaliveTimeout)",
				ErrKeepaliveTimeout, time.Since(start).Round(time.Millisecond)))
			return
		}
	}
	s.kaMu.Lock()
	if !s.kaStop {
		s.kaT.Reset(s.kaEvery)
	}
	s.kaMu.Unlock()
}

func (s *Session) setCause(err error) {
	s.mu.Lock()
	if s.cause == nil {
		// A connection error seen before anyone closed the session is the
		// real cause; what the reader of a stream saw after it is an echo.
		if ce := s.conn.firstErr(); ce != nil {
			err = ce
		}
		if err == nil {
			err = ErrClosed
		}
		s.cause = err
	}
	s.mu.Unlock()
}

// CloseWithCause closes the session, recording err as the cause if it is
// the first. It returns at once; Close also waits for the goroutines.
func (s *Session) CloseWithCause(err error) {
	s.setCause(err)
	if y := s.y.Load(); y != nil {
		y.Close()
	}
}

// Close closes the session and waits for its goroutines. It is safe to
// call more than once.
func (s *Session) Close() error {
	s.CloseWithCause(ErrClosed)
	s.closeOnce.Do(func() {
		s.conn.Close()
	})
	s.wg.Wait()
	s.drainMu.Lock()
	s.drainEnd = true
	s.drainMu.Unlock()
	s.drains.Wait()
	return nil
}

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended, or nil while it runs.
func (s *Session) Err() error {
	select {
	case <-s.done:
	default:
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cause
}

// Open opens a stream to the peer.
func (s *Session) Open() (net.Conn, error) {
	y := s.y.Load()
	if y == nil {
		return nil, yamux.ErrSessionShutdown
	}
	st, err := y.OpenStream()
	if err != nil {
		return nil, err
	}
	return &Stream{Stream: st, s: s}, nil
}

// Accept waits for the peer to open a stream. While MaxStreams streams
// accepted before are open it waits for one of them to finish closing;
// meanwhile new streams queue in yamux's backlog, and those beyond it are
// reset.
func (s *Session) Accept() (net.Conn, error) {
	y := s.y.Load()
	if y == nil {
		return nil, yamux.ErrSessionShutdown
	}
	select {
	case s.slots <- struct{}{}:
	case <-s.closed:
		return nil, yamux.ErrSessionShutdown
	}
	st, err := y.AcceptStream()
	if err != nil {
		<-s.slots
		return nil, err
	}
	return &Stream{Stream: st, s: s, slot: true}, nil
}

// Stream is a mux stream. Close is a full close and CloseWrite the
// half-close (see the package doc).
type Stream struct {
	*yamux.Stream
	s         *Session
	slot      bool // holds one of s.slots until its close has finished
	closeOnce sync.Once
}

// CloseWrite sends FIN: the peer reads EOF, and reading goes on until the
// peer's FIN.
func (st *Stream) CloseWrite() error { return st.Stream.Close() }

// Close sends FIN (if not sent yet) and stops reading: what the peer still
// sends is discarded until its FIN, a reset or StreamCloseTimeout, and then
// the stream's buffer is freed and, for a stream the peer opened, its slot
// of MaxStreams is released. Safe to call more than once.
func (st *Stream) Close() error {
	err := st.Stream.Close()
	st.closeOnce.Do(func() {
		st.s.drainMu.Lock()
		if st.s.drainEnd { // the session is gone: reads end at once
			st.s.drainMu.Unlock()
			st.drain()
			return
		}
		st.s.drains.Add(1)
		st.s.drainMu.Unlock()
		go func() {
			defer st.s.drains.Done()
			st.drain()
		}()
	})
	return err
}

// Reset aborts the stream: the peer's reads and writes fail at once (RST),
// what arrived is dropped, and a stream the peer opened gives back its
// slot. Use it where the other end of a relay failed, so the peer stops
// sending what nobody will read; Close is the orderly end. Safe after
// Close and more than once.
func (st *Stream) Reset() error {
	err := st.Stream.Reset()
	st.closeOnce.Do(func() { // not closed before: no drain holds the slot
		st.Stream.Shrink()
		if st.slot {
			<-st.s.slots
		}
	})
	return err
}

// WaitReadable waits until data or the end is available without consuming
// it (a yamux Read with an empty buffer; see package bridge).
func (st *Stream) WaitReadable() error {
	_, err := st.Stream.Read(nil)
	return err
}

var drainPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

func (st *Stream) drain() {
	st.Stream.SetReadDeadline(time.Now().Add(st.s.cfg.StreamCloseTimeout))
	for {
		// Wait without a buffer, so a thousand closing streams hold none.
		if _, err := st.Stream.Read(nil); err != nil {
			break
		}
		bp := drainPool.Get().(*[]byte)
		_, err := st.Stream.Read(*bp)
		drainPool.Put(bp)
		st.Stream.Shrink() // drop the emptied buffer now, not at the FIN
		if err != nil {
			break
		}
	}
	st.Stream.Shrink()
	if st.slot {
		<-st.s.slots
	}
}

// LastRead is when bytes last arrived from the peer, whatever they were.
func (s *Session) LastRead() time.Time { return time.Unix(0, s.conn.lastRead.Load()) }

// NumStreams is the number of open streams, either side's, including those
// closed here and waiting for the peer's FIN.
func (s *Session) NumStreams() int {
	if y := s.y.Load(); y != nil {
		return y.NumStreams()
	}
	return 0
}

// AcceptedOpen is the number of streams accepted from the peer whose close
// has not finished: at most Config.MaxStreams.
func (s *Session) AcceptedOpen() int { return len(s.slots) }

// RemoteAddr is the peer's address.
func (s *Session) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

// coalesceMax is the largest yamux frame body written together with its
// header in one Write (see trackedConn.Write).
const coalesceMax = 16 << 10

// trackedConn records when bytes last arrived and the first I/O error, and
// coalesces yamux's writes: yamux writes a data frame's 12-byte header and
// its body with two Writes, which under TLS makes two records and two
// syscalls; a small frame goes out as one. Only yamux's send loop writes,
// so Write needs no lock.
type trackedConn struct {
	net.Conn
	lastRead atomic.Int64
	errOnce  sync.Once
	err      atomic.Pointer[error]

	hdr  [headerSize]byte
	held bool   // hdr waits for its body
	wbuf []byte // header and body of a coalesced frame
}

// headerSize is the size of a yamux frame header: version, type, flags (2),
// stream ID (4), length (4). Data frames have type 0; their body of
// length bytes follows.
const headerSize = 12

func (c *trackedConn) touch() { c.lastRead.Store(time.Now().UnixNano()) }

func (c *trackedConn) record(op string, err error) {
	c.errOnce.Do(func() {
		var e error
		if errors.Is(err, io.EOF) {
			e = ErrPeerClosed
		} else {
			e = &ConnError{Op: op, Err: err}
		}
		c.err.Store(&e)
	})
}

func (c *trackedConn) firstErr() error {
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.touch()
	}
	if err != nil {
		c.record("read", err)
	}
	return n, err
}

func (c *trackedConn) Write(b []byte) (int, error) {
	if !c.held && len(b) == headerSize && b[1] == 0 && binary.BigEndian.Uint32(b[8:]) > 0 {
		copy(c.hdr[:], b) // a data frame's header: its body comes next
		c.held = true
		return len(b), nil
	}
	if c.held {
		c.held = false
		if len(b) <= coalesceMax {
			c.wbuf = append(append(c.wbuf[:0], c.hdr[:]...), b...)
			n, err := c.write(c.wbuf)
			return max(n-headerSize, 0), err
		}
		if _, err := c.write(c.hdr[:]); err != nil {
			return 0, err
		}
	}
	return c.write(b)
}

// holder is implemented by the TCP connection under TLS (package
// transport): between Hold and Flush it sends the records TLS makes of one
// write with one syscall.
type holder interface {
	Hold()
	Flush() error
}

func (c *trackedConn) write(b []byte) (int, error) {
	var h holder
	if nc, ok := c.Conn.(interface{ NetConn() net.Conn }); ok && len(b) > 16<<10 {
		h, _ = nc.NetConn().(holder)
	}
	if h != nil {
		h.Hold()
	}
	n, err := c.Conn.Write(b)
	if h != nil {
		if ferr := h.Flush(); err == nil {
			err = ferr
		}
	}
	if err != nil {
		c.record("write", err)
	}
	return n, err
}
