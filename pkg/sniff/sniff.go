// Package sniff shares one TCP listener among several services: it reads
// the first bytes of each accepted connection, lets a classifier pick the
// service, and hands the connection, with the bytes read replayed, to
// that service's queue, a net.Listener of its own. hops uses it when a
// vhost port equals bindPort: hop's TLS control connections, TLS with
// the server name of an https proxy, and plain HTTP arrive on one port.
//
// Sniffing is bounded: at most Config.MaxPending connections are being
// classified at once (more are closed at once), each within
// Config.Timeout (then closed), and the classifier decides how much to
// read. Close is idempotent and waits for every goroutine.
package sniff

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/acceptloop"
	"github.com/hopproxy/hop/pkg/bridge"
	"github.com/hopproxy/hop/pkg/drain"
)

// Classify reads as few bytes of c as it needs, before deadline (which
// is already c's read deadline; Classify may set it again), and returns the index of the queue c goes to and every byte it read,
// which the queue's Accept replays. An error, or an index out of range,
// closes c.
type Classify func(c net.Conn, deadline time.Time) (queue int, prefix []byte, err error)

// Config tunes a Listener; zero values mean the defaults.
type Config struct {
	// Timeout bounds the classification of a connection. Default 10s.
	Timeout time.Duration
	// MaxPending caps the connections being classified at once; more
	// are closed on accept. Default 1024.
	MaxPending int
	// Admit, when set, is asked before a connection is classified (a
	// cap per source address, say); an error closes it, and leave is
	// called once it is classified.
	Admit func(net.Addr) (leave func(), err error)
	// Log gets a debug line per connection refused; nil discards.
	Log *slog.Logger
}

// ErrClosed is returned by a queue's Accept after Close of the queue or
// of the Listener; it wraps net.ErrClosed.
var ErrClosed = net.ErrClosed

// Listener splits the connections of one net.Listener among queues.
type Listener struct {
	ln       net.Listener
	cfg      Config
	log      *slog.Logger
	classify Classify
	queues   []*Queue
	pending  drain.Set     // connections being classified
	slots    chan struct{} // MaxPending tokens

	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	mu      sync.Mutex
	started bool
	open    int // queues not closed; the last Close closes the Listener
}

// New returns a Listener over ln with n queues (n >= 1); Start begins
// accepting. The Listener owns ln.
func New(ln net.Listener, n int, classify Classify, cfg Config) *Listener {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 1024
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Listener{ln: ln, cfg: cfg, log: log, classify: classify, done: make(chan struct{}),
		slots: make(chan struct{}, cfg.MaxPending), open: n}
	for i := 0; i < n; i++ {
		l.queues = append(l.queues, &Queue{l: l, ch: make(chan net.Conn), done: make(chan struct{})})
	}
	return l
}

// Queue returns queue i, a net.Listener whose Addr is the shared one.
func (l *Listener) Queue(i int) *Queue { return l.queues[i] }

// Addr is the address of the shared listener.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Start accepts in the background until Close. Calling it again is a
// no-op.
func (l *Listener) Start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started {
		return
	}
	l.started = true
	select {
	case <-l.done:
		return
	default:
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		acceptloop.Serve(context.Background(), l.ln, l.accepted, acceptloop.Options{Log: l.log})
	}()
}

func (l *Listener) accepted(c net.Conn) {
	select {
	case l.slots <- struct{}{}:
	default:
		l.log.Debug("connection refused: too many connections being sniffed", "src", c.RemoteAddr().String(), "max", l.cfg.MaxPending)
		c.Close()
		return
	}
	leave := func() {}
	if l.cfg.Admit != nil {
		lv, err := l.cfg.Admit(c.RemoteAddr())
		if err != nil {
			<-l.slots
			l.log.Debug("connection refused before sniffing", "src", c.RemoteAddr().String(), "error", err)
			c.Close()
			return
		}
		leave = lv
	}
	if !l.pending.Add(c) {
		leave()
		<-l.slots
		c.Close()
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.route(c, leave)
	}()
}

func (l *Listener) route(c net.Conn, leave func()) {
	deadline := time.Now().Add(l.cfg.Timeout)
	c.SetReadDeadline(deadline)
	i, prefix, err := l.classify(c, deadline)
	c.SetReadDeadline(time.Time{})
	l.pending.Remove(c)
	leave()
	<-l.slots
	if err == nil && (i < 0 || i >= len(l.queues)) {
		err = errors.New("no queue for it")
	}
	if err != nil {
		l.log.Debug("connection refused: not recognized", "src", c.RemoteAddr().String(), "error", err)
		c.Close()
		return
	}
	q := l.queues[i]
	rc := &Conn{Conn: c, prefix: prefix}
	select {
	case q.ch <- rc:
	case <-q.done:
		c.Close()
	case <-l.done:
		c.Close()
	}
}

// Close closes the shared listener and every queue, closes the
// connections being classified, and waits for its goroutines. It may be
// called more than once.
func (l *Listener) Close() error {
	l.once.Do(func() {
		l.mu.Lock()
		close(l.done)
		l.mu.Unlock()
		l.ln.Close()
		l.pending.Close()
	})
	l.wg.Wait()
	return nil
}

// queueClosed closes the Listener once every queue is closed.
func (l *Listener) queueClosed() {
	l.mu.Lock()
	l.open--
	last := l.open == 0
	l.mu.Unlock()
	if last {
		l.Close()
	}
}

// Queue is one service's share of a Listener.
type Queue struct {
	l    *Listener
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

// Accept returns the next connection classified for this queue: a *Conn
// that replays the bytes read.
func (q *Queue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, ErrClosed
	case <-q.l.done:
		return nil, ErrClosed
	}
}

// Close stops this queue: later connections for it are closed. Closing
// the last open queue closes the Listener (and waits for it). It may be
// called more than once.
func (q *Queue) Close() error {
	q.once.Do(func() {
		close(q.done)
		q.l.queueClosed()
	})
	return nil
}

// Addr is the shared listener's address.
func (q *Queue) Addr() net.Addr { return q.l.ln.Addr() }

// Conn is an accepted connection whose first bytes, read to classify it,
// are returned again by Read before the rest.
type Conn struct {
	net.Conn
	mu     sync.Mutex
	prefix []byte
}

// Read returns the replayed bytes first.
func (c *Conn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(b)
}

// CloseWrite half-closes the connection when the underlying one can,
// else closes it.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// WaitReadable returns at once while replayed bytes remain, then waits
// on the underlying connection (see package bridge).
func (c *Conn) WaitReadable() error {
	c.mu.Lock()
	n := len(c.prefix)
	c.mu.Unlock()
	if n > 0 {
		return nil
	}
	if w := bridge.Waiter(c.Conn); w != nil {
		return w()
	}
	return nil
}

// NewConn returns c with prefix replayed before the rest of its bytes.
func NewConn(c net.Conn, prefix []byte) *Conn { return &Conn{Conn: c, prefix: prefix} }
