package xtcp

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
)

// MaxDatagramSize is the largest datagram Send takes: the largest IPv4 UDP
// payload (65507 bytes) less FrameOverhead. A datagram larger than the
// path MTU (typically 1500 bytes less FrameOverhead and IP/UDP headers:
// 1442 bytes over IPv4) is fragmented by IP, and a path that drops
// fragments drops it; keep datagrams small where that matters.
const MaxDatagramSize = 65507 - FrameOverhead

// DatagramPath carries datagrams (xudp) over one punched UDP path, each
// authenticated and encrypted (ChaCha20-Poly1305, a key per direction from
// HKDF, the frame counter as nonce) and checked against a replay window.
// Packets from other addresses, forgeries and replays are dropped. The
// path keepalive runs as for xtcp.
//
// A DatagramPath owns its socket: Close (or the path's death) closes it.
// Call Close even after Done: it waits for the path's goroutines.
type DatagramPath struct {
	p  *path
	in chan []byte
	wg sync.WaitGroup
}

// NewDatagramPath starts an xudp path to the peer at remote over conn,
// the socket Punch used. key is the attempt key (PunchConfig.Key), session the punch's session
// ID and role ours. On success the DatagramPath owns conn; on error conn is
// untouched.
func NewDatagramPath(conn *net.UDPConn, remote netip.AddrPort, key []byte, session SessionID, role Role, cfg DatagramConfig) (*DatagramPath, error) {
	cfg, pc, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p, err := newPath(conn, remote, key, session, role, kindDatagram, pc)
	if err != nil {
		return nil, err
	}
	d := &DatagramPath{p: p, in: make(chan []byte, cfg.QueueLen)}
	p.run()
	d.wg.Add(1)
	go d.read()
	p.log.Info("xudp path started", "session", session)
	return d, nil
}

func (d *DatagramPath) read() {
	defer d.wg.Done()
	buf := make([]byte, 65536)
	for {
		pt, err := d.p.readData(buf)
		if err != nil {
			return
		}
		select {
		case d.in <- append([]byte(nil), pt...):
		default:
			d.p.dropped.Add(1)
		}
	}
}

// Send sends one datagram of at most MaxDatagramSize bytes. Like UDP, it
// does not wait for delivery; it fails only for a datagram too large or a
// path that has ended (with the path's cause).
func (d *DatagramPath) Send(b []byte) error {
	if len(b) > MaxDatagramSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(b), MaxDatagramSize)
	}
	select {
	case <-d.p.done:
		return d.p.err()
	default:
	}
	return d.p.writeData(b)
}

// Recv waits for the next datagram and copies it into b. A datagram larger
// than b is cut to len(b) and io.ErrShortBuffer returned with the count.
// Once the path has ended and queued datagrams are read, Recv returns the
// path's cause.
func (d *DatagramPath) Recv(b []byte) (int, error) {
	select {
	case m := <-d.in:
		return copyPacket(b, m)
	default:
	}
	select {
	case m := <-d.in:
		return copyPacket(b, m)
	case <-d.p.done:
		return 0, d.p.err()
	}
}

// copyPacket copies a received packet m into b, cut to len(b) with
// io.ErrShortBuffer.
func copyPacket(b, m []byte) (int, error) {
	n := copy(b, m)
	if n < len(m) {
		return n, io.ErrShortBuffer
	}
	return n, nil
}

// Close closes the path and its socket, tells the peer (best effort) and
// waits for the path's goroutines. It is safe to call more than once; it
// returns nil.
func (d *DatagramPath) Close() error {
	d.p.close()
	d.wg.Wait()
	d.p.wait()
	return nil
}

// Done is closed when the path has ended.
func (d *DatagramPath) Done() <-chan struct{} { return d.p.done }

// Err returns why the path ended (ErrClosed, ErrPeerClosed, an error
// wrapping ErrPathDead, ...), or nil while it runs.
func (d *DatagramPath) Err() error { return d.p.err() }

// Remote returns the peer's address on the path.
func (d *DatagramPath) Remote() netip.AddrPort { return d.p.remote }

// Stats returns the path's counters.
func (d *DatagramPath) Stats() PathStats { return d.p.stats() }
