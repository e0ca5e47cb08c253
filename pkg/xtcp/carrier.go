package xtcp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Payload says what a UDP carrier's data frames hold; it selects their
// keys (see the package doc).
type Payload uint8

// Payloads.
const (
	PayloadKCP       Payload = 1 // KCP packets of an xtcp session
	PayloadDatagrams Payload = 2 // datagrams of an xudp path
)

// UDPCarrier is a punched UDP path as a link's carrier: the path's
// authentication, encryption, replay window and keepalive (see the package
// doc), with batched sends and reads.
type UDPCarrier struct{ p *path }

var _ Carrier = (*UDPCarrier)(nil)

// NewUDPCarrier starts a carrier on conn, the socket Punch used, to the
// peer at remote (PunchResult.Remote). key is the attempt key and session
// the punch's session ID. Of cfg only the keepalive, clock skew, socket
// buffer and logger settings apply. On success the carrier owns conn; on
// error conn is untouched.
func NewUDPCarrier(conn *net.UDPConn, remote netip.AddrPort, key []byte, session SessionID, role Role, payload Payload, cfg SessionConfig) (*UDPCarrier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	kind := kindKCP
	switch payload {
	case PayloadKCP:
	case PayloadDatagrams:
		kind = kindDatagram
	default:
		return nil, fmt.Errorf("xtcp: unknown carrier payload %d", uint8(payload))
	}
	p, err := newPath(conn, remote, key, session, role, kind, cfg.path())
	if err != nil {
		return nil, err
	}
	p.startBatchSender()
	p.startBatchReceiver()
	p.run()
	return &UDPCarrier{p: p}, nil
}

// SendPacket seals b and queues it for the socket.
func (c *UDPCarrier) SendPacket(b []byte) error { return c.p.enqueue(b) }

// RecvPacket waits for the next authentic data frame and copies its
// payload into b.
func (c *UDPCarrier) RecvPacket(b []byte) (int, error) {
	pt, err := c.p.readData(b)
	if err != nil {
		return 0, err
	}
	return copyPacket(b, pt)
}

// Silence is the time since the last authentic packet from the peer.
func (c *UDPCarrier) Silence() time.Duration { return c.p.silence() }

// RTT is the round trip of the last answered keepalive.
func (c *UDPCarrier) RTT() time.Duration { return time.Duration(c.p.rtt.Load()) }

// Poke sends a keepalive now.
func (c *UDPCarrier) Poke() { c.p.sendKeepalive() }

// SetKeepaliveInterval changes the path's keepalive interval from now on
// (the keepalive timeout stays as configured). d must be positive and
// shorter than the keepalive timeout, or ErrInvalidInterval is returned
// and nothing changes. Safe from any goroutine.
func (c *UDPCarrier) SetKeepaliveInterval(d time.Duration) error { return c.p.setKeepaliveInterval(d) }

// KeepaliveInterval is the path's keepalive interval now.
func (c *UDPCarrier) KeepaliveInterval() time.Duration { return c.p.keepaliveInterval() }

// KeepaliveTimeout is the path's keepalive timeout.
func (c *UDPCarrier) KeepaliveTimeout() time.Duration { return c.p.cfg.keepaliveTimeout }

// Fail ends the path with cause (without telling the peer: the path is
// presumed broken).
func (c *UDPCarrier) Fail(cause error) { c.p.fail(cause) }

// Done is closed when the path has ended.
func (c *UDPCarrier) Done() <-chan struct{} { return c.p.done }

// Err says why the path ended (wrapping ErrPathDead, ErrPeerClosed,
// ErrClosed ...), nil while it works.
func (c *UDPCarrier) Err() error { return c.p.err() }

// Close tells the peer, closes the socket and waits for the path's
// goroutines. Safe to call more than once.
func (c *UDPCarrier) Close() error {
	c.p.close()
	c.p.wait()
	return nil
}

// Remote is the peer's address on the path.
func (c *UDPCarrier) Remote() netip.AddrPort { return c.p.remote }

// Stats returns the path's counters.
func (c *UDPCarrier) Stats() PathStats { return c.p.stats() }

// RecordConn is a stream that carries whole records, sealed end to end
// between the peers (pkg/seal's Conn in datagram use).
type RecordConn interface {
	WriteDatagram(d []byte) error
	ReadDatagram(b []byte) (int, error)
	Close() error
}

// StreamCarrier carries a link's packets as records of a reliable stream:
// the relay through the server, or a punched TCP connection. Sends are
// queued for one writer and dropped when the queue is full (a stream that
// cannot keep up is a congested path: KCP retransmits), so the link never
// waits on the stream.
type StreamCarrier struct {
	rc    RecordConn
	q     chan *[]byte
	bufs  sync.Pool
	start time.Time
	last  atomic.Int64 // ns since start of the last record received

	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	cause   error
	wg      sync.WaitGroup
	dropped atomic.Uint64
}

var _ Carrier = (*StreamCarrier)(nil)

// DefaultStreamQueue is the send queue of a StreamCarrier in packets.
const DefaultStreamQueue = 1024

// NewStreamCarrier starts a carrier on rc, which it owns from then on.
// queueLen bounds packets waiting to be written (0: DefaultStreamQueue).
func NewStreamCarrier(rc RecordConn, queueLen int) *StreamCarrier {
	if queueLen <= 0 {
		queueLen = DefaultStreamQueue
	}
	c := &StreamCarrier{rc: rc, q: make(chan *[]byte, queueLen), start: time.Now(), done: make(chan struct{})}
	c.wg.Add(1)
	go c.write()
	return c
}

func (c *StreamCarrier) write() {
	defer c.wg.Done()
	for {
		select {
		case bp := <-c.q:
			err := c.rc.WriteDatagram(*bp)
			c.bufs.Put(bp)
			if err != nil {
				c.fail(fmt.Errorf("xtcp: stream carrier: write: %w", err))
				return
			}
		case <-c.done:
			return
		}
	}
}

// SendPacket queues a copy of b; it drops it when the queue is full
// (ErrQueueFull).
func (c *StreamCarrier) SendPacket(b []byte) error {
	select {
	case <-c.done:
		return c.Err()
	default:
	}
	bp, _ := c.bufs.Get().(*[]byte)
	if bp == nil || cap(*bp) < len(b) {
		nb := make([]byte, 0, max(len(b), 1536))
		bp = &nb
	}
	*bp = append((*bp)[:0], b...)
	select {
	case c.q <- bp:
		return nil
	default:
		c.dropped.Add(1)
		c.bufs.Put(bp)
		return ErrQueueFull
	}
}

// RecvPacket reads the next record into b.
func (c *StreamCarrier) RecvPacket(b []byte) (int, error) {
	n, err := c.rc.ReadDatagram(b)
	if err != nil {
		c.fail(fmt.Errorf("xtcp: stream carrier: read: %w", err))
		return 0, c.Err()
	}
	c.last.Store(int64(time.Since(c.start)))
	return n, nil
}

// Silence is the time since the last record arrived.
func (c *StreamCarrier) Silence() time.Duration {
	return time.Since(c.start) - time.Duration(c.last.Load())
}

// RTT is unknown for a stream carrier: 0.
func (c *StreamCarrier) RTT() time.Duration { return 0 }

// Dropped counts packets the full send queue had no room for.
func (c *StreamCarrier) Dropped() uint64 { return c.dropped.Load() }

func (c *StreamCarrier) fail(cause error) {
	c.once.Do(func() {
		c.mu.Lock()
		c.cause = cause
		c.mu.Unlock()
		close(c.done)
		if cw, ok := c.rc.(interface{ CloseWrite() error }); ok && errors.Is(cause, ErrClosed) {
			// Closed here: the peer reads the stream's clean end (io.EOF)
			// and ends the link at once. Bounded: a writer stuck on a full
			// stream holds the write side.
			ended := make(chan struct{})
			go func() { cw.CloseWrite(); close(ended) }()
			select {
			case <-ended:
			case <-time.After(time.Second):
			}
		}
		c.rc.Close()
	})
}

// Done is closed when the stream has ended.
func (c *StreamCarrier) Done() <-chan struct{} { return c.done }

// Err says why the stream ended, nil while it works.
func (c *StreamCarrier) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// Close ends the stream cleanly where it can (the peer's link then ends
// too) and waits for the writer. Safe to call more than once.
func (c *StreamCarrier) Close() error {
	c.fail(ErrClosed)
	c.wg.Wait()
	return nil
}
