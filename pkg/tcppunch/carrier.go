package tcppunch

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

	"github.com/hopproxy/hop/pkg/seal"
	"github.com/hopproxy/hop/pkg/xtcp"
)

// closeGrace bounds how long Close waits for the end record to go out and
// the peer's to come back.
const closeGrace = time.Second

// smallBuf is the capacity of pooled packet buffers: link packets (KCP,
// MTU 1350) fit; a larger one gets a buffer of its own size, so a full
// queue holds about its packets' bytes, not 64 KiB per packet.
const smallBuf = 2048

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, smallBuf); return &b }}

// getBuf returns an empty buffer with room for n bytes.
func getBuf(n int) *[]byte {
	if n > smallBuf {
		b := make([]byte, 0, n)
		return &b
	}
	return bufPool.Get().(*[]byte)
}

func putBuf(bp *[]byte) {
	if cap(*bp) == smallBuf {
		bufPool.Put(bp)
	}
}

// Stats counts a carrier's packets.
type Stats struct {
	Sent, Received     uint64 // packets
	SendDropped        uint64 // SendPacket on a full queue
	RecvDropped        uint64 // always 0: a full receive queue holds the stream back instead
	MissedKeepalives   uint64 // pings unanswered within an interval
	KeepalivesAnswered uint64
}

// Carrier is a punched, authenticated TCP connection carrying the packets
// of a link (see the package doc). Its methods are safe for concurrent use.
type Carrier struct {
	conn *net.TCPConn
	sc   *seal.Conn
	cfg  CarrierConfig
	role xtcp.Role
	path xtcp.Candidate
	log  *slog.Logger
	// accepted: the connection came to the endpoint's listener; else our
	// connect made it (through the peer's listener or a simultaneous open).
	accepted bool
	start    time.Time

	sendq chan *[]byte
	ctrlq chan []byte // pongs, ahead of packets
	recvq chan *[]byte

	lastRecv atomic.Int64 // ns since start of the last authentic record
	rtt      atomic.Int64

	kmu         sync.Mutex // keepalive state
	pingSeq     uint64
	outstanding bool
	missed      int
	pingSent    int64 // ns since start

	sent, received, sendDropped, recvDropped, missedTotal, answered atomic.Uint64

	// Test hooks: pongs not to send, and whether to write nothing at all.
	skipPongs atomic.Int32
	mute      atomic.Bool

	done       chan struct{}
	readerDone chan struct{}
	once       sync.Once
	mu         sync.Mutex
	err        error
	wg         sync.WaitGroup
}

// newCarrier starts the carrier's goroutines on an authenticated
// connection.
func newCarrier(conn *net.TCPConn, sc *seal.Conn, role xtcp.Role, path xtcp.Candidate, cfg CarrierConfig) *Carrier {
	cfg = cfg.withDefaults()
	c := &Carrier{conn: conn, sc: sc, cfg: cfg, role: role, path: path, start: time.Now(),
		log:   cfg.Logger.With("local", conn.LocalAddr().String(), "remote", conn.RemoteAddr().String()),
		sendq: make(chan *[]byte, cfg.SendQueue), ctrlq: make(chan []byte, 8), recvq: make(chan *[]byte, cfg.RecvQueue),
		done: make(chan struct{}), readerDone: make(chan struct{})}
	c.wg.Add(2)
	go c.reader()
	go c.writer()
	return c
}

func (c *Carrier) now() int64 { return int64(time.Since(c.start)) }

// SendPacket queues one packet for the peer. It never blocks: on a full
// queue the packet is dropped (counted in Stats) and xtcp.ErrQueueFull
// returned, so that a link knows the carrier did not take it. It fails
// otherwise only when the carrier has ended (Err) or the packet exceeds
// MaxPacket.
func (c *Carrier) SendPacket(b []byte) error {
	select {
	case <-c.done:
		return c.Err()
	default:
	}
	if len(b) > MaxPacket {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(b), MaxPacket)
	}
	bp := getBuf(1 + len(b))
	*bp = append(append((*bp)[:0], kindPacket), b...)
	select {
	case c.sendq <- bp:
		return nil
	default:
		putBuf(bp)
		c.sendDropped.Add(1)
		return xtcp.ErrQueueFull
	}
}

// RecvPacket waits for the next packet from the peer and copies it into b.
// After the carrier ended it returns the packets still queued, then Err. A
// packet larger than b is dropped with ErrTooLarge.
func (c *Carrier) RecvPacket(b []byte) (int, error) {
	var bp *[]byte
	select {
	case bp = <-c.recvq:
	default:
		select {
		case bp = <-c.recvq:
		case <-c.done:
			select {
			case bp = <-c.recvq:
			default:
				return 0, c.Err()
			}
		}
	}
	defer putBuf(bp)
	if len(*bp) > len(b) {
		return 0, fmt.Errorf("%w: %d bytes into a buffer of %d", ErrTooLarge, len(*bp), len(b))
	}
	return copy(b, *bp), nil
}

// Silence is the time since the last authentic record from the peer (or
// since the carrier started).
func (c *Carrier) Silence() time.Duration { return time.Duration(c.now() - c.lastRecv.Load()) }

// RTT is the round trip of the last answered ping, 0 before the first.
func (c *Carrier) RTT() time.Duration { return time.Duration(c.rtt.Load()) }

// Done is closed when the carrier has ended.
func (c *Carrier) Done() <-chan struct{} { return c.done }

// Err is nil while the carrier runs, then why it ended: ErrClosed after
// Close, ErrPeerClosed, or an error wrapping ErrPathDead (or ErrRecord).
func (c *Carrier) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the carrier, telling the peer (the seal end record, within a
// second), and waits for its goroutines. It is safe to call more than once.
func (c *Carrier) Close() error {
	c.stop(ErrClosed)
	c.wg.Wait()
	return nil
}

// Path is the peer's candidate the connection runs to (PeerReflexive when
// it came from an address the peer did not list).
func (c *Carrier) Path() xtcp.Candidate { return c.path }

// Accepted reports whether the endpoint's listener accepted the
// connection (the peer's SYN came first), rather than our own connect
// (answered by the peer's listener, or a simultaneous open).
func (c *Carrier) Accepted() bool { return c.accepted }

// LocalAddr and RemoteAddr are the connection's 5-tuple ends.
func (c *Carrier) LocalAddr() netip.AddrPort { return c.conn.LocalAddr().(*net.TCPAddr).AddrPort() }

// RemoteAddr is the peer's end of the connection.
func (c *Carrier) RemoteAddr() netip.AddrPort { return c.conn.RemoteAddr().(*net.TCPAddr).AddrPort() }

// Stats returns the carrier's counters.
func (c *Carrier) Stats() Stats {
	return Stats{Sent: c.sent.Load(), Received: c.received.Load(), SendDropped: c.sendDropped.Load(),
		RecvDropped: c.recvDropped.Load(), MissedKeepalives: c.missedTotal.Load(), KeepalivesAnswered: c.answered.Load()}
}

// stop records the first cause and wakes both goroutines.
func (c *Carrier) stop(cause error) {
	c.once.Do(func() {
		c.mu.Lock()
		c.err = cause
		c.mu.Unlock()
		if errors.Is(cause, ErrClosed) || errors.Is(cause, ErrPeerClosed) {
			// Room for the end records each way.
			c.conn.SetDeadline(time.Now().Add(closeGrace))
			c.log.Debug("TCP path closed", "cause", cause)
		} else {
			c.conn.SetDeadline(time.Now())
			c.log.Info("TCP path ended", "cause", cause)
		}
		close(c.done)
	})
}

func (c *Carrier) reader() {
	defer c.wg.Done()
	defer close(c.readerDone)
	buf := make([]byte, 1+MaxPacket)
	for {
		n, err := c.sc.ReadDatagram(buf)
		if err != nil {
			select {
			case <-c.done: // closing: the peer's end or the deadline
			default:
				if errors.Is(err, io.EOF) {
					c.stop(ErrPeerClosed)
				} else {
					c.stop(fmt.Errorf("%w: reading: %w", ErrPathDead, err))
				}
			}
			return
		}
		c.lastRecv.Store(c.now())
		kind, body, err := decodeRecord(buf[:n])
		if err == nil && kind == kindNominate {
			err = fmt.Errorf("%w: nominate after the handshake", ErrRecord)
		}
		if err != nil {
			c.stop(err)
			return
		}
		select {
		case <-c.done:
			continue // closing: read on until the peer's end
		default:
		}
		switch kind {
		case kindPacket:
			c.received.Add(1)
			bp := getBuf(len(body))
			*bp = append((*bp)[:0], body...)
			// A packet the stream delivered is never dropped here (a link
			// counts on a stream carrier losing nothing it took): a full
			// queue holds the reader, and TCP pushes back on the peer.
			// The consumer must keep reading, or the keepalive stalls too.
			select {
			case c.recvq <- bp:
			case <-c.done:
				putBuf(bp)
			}
		case kindPing:
			if c.skipPongs.Load() > 0 {
				c.skipPongs.Add(-1)
				continue
			}
			select {
			case c.ctrlq <- keepaliveRecord(kindPong, binary.BigEndian.Uint64(body)):
			default: // a flood of pings: the answers to the latest go
			}
		case kindPong:
			seq := binary.BigEndian.Uint64(body)
			c.kmu.Lock()
			if c.outstanding && seq == c.pingSeq {
				c.outstanding, c.missed = false, 0
				c.answered.Add(1)
				c.rtt.Store(c.now() - c.pingSent)
			}
			c.kmu.Unlock()
		}
	}
}

func (c *Carrier) write(rec []byte) error {
	if c.mute.Load() {
		return nil
	}
	c.conn.SetWriteDeadline(time.Now().Add(c.cfg.KeepaliveTimeout))
	if err := c.sc.WriteDatagram(rec); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return fmt.Errorf("%w: a write stalled for %v", ErrPathDead, c.cfg.KeepaliveTimeout)
		}
		return fmt.Errorf("%w: writing: %w", ErrPathDead, err)
	}
	return nil
}

// keepalive runs at every tick: it judges the last ping and the silence,
// and sends the next ping. It returns why the path is dead, or nil.
func (c *Carrier) keepalive() error {
	c.kmu.Lock()
	if c.outstanding {
		c.missed++
		c.missedTotal.Add(1)
	}
	missed := c.missed
	c.pingSeq++
	seq := c.pingSeq
	c.outstanding = true
	c.pingSent = c.now()
	c.kmu.Unlock()
	if missed >= 2 {
		return fmt.Errorf("%w: %d keepalives in a row unanswered (interval %v)", ErrPathDead, missed, c.cfg.KeepaliveInterval)
	}
	if s := c.Silence(); s >= c.cfg.KeepaliveTimeout {
		return fmt.Errorf("%w: nothing from the peer for %v (keepalive timeout %v)", ErrPathDead, s.Round(time.Millisecond), c.cfg.KeepaliveTimeout)
	}
	if missed == 1 {
		c.log.Debug("keepalive unanswered, tolerating one", "interval", c.cfg.KeepaliveInterval)
	}
	return c.write(keepaliveRecord(kindPing, seq))
}

func (c *Carrier) writer() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.KeepaliveInterval)
	defer t.Stop()
	var err error
	for err == nil {
		select { // answers first
		case rec := <-c.ctrlq:
			err = c.write(rec)
			continue
		case <-c.done:
		default:
		}
		select {
		case <-c.done:
		case rec := <-c.ctrlq:
			err = c.write(rec)
			continue
		case bp := <-c.sendq:
			err = c.write(*bp)
			putBuf(bp)
			if err == nil {
				c.sent.Add(1)
			}
			continue
		case <-t.C:
			err = c.keepalive()
			continue
		}
		break
	}
	if err != nil {
		c.stop(err)
	}
	cause := c.Err()
	if errors.Is(cause, ErrClosed) || errors.Is(cause, ErrPeerClosed) {
		if !c.mute.Load() {
			c.sc.CloseWrite() // the end record, then FIN; bounded by the deadline stop set
		}
		<-c.readerDone // the peer's end, or the deadline
	} else {
		<-c.readerDone
	}
	for {
		select {
		case bp := <-c.sendq:
			putBuf(bp)
			continue
		default:
		}
		break
	}
	c.conn.Close()
}
