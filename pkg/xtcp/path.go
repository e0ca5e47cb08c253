package xtcp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// PathStats are counters of a punched path.
type PathStats struct {
	Remote netip.AddrPort
	// RTT is the round trip of the last answered keepalive (0 before the
	// first answer).
	RTT time.Duration
	// LastReceived is when the last authentic packet from the peer came
	// (the path's start before the first).
	LastReceived time.Time
	// PacketsSent and PacketsReceived count data frames and control
	// packets; BytesSent and BytesReceived are UDP payload bytes.
	PacketsSent, PacketsReceived uint64
	BytesSent, BytesReceived     uint64
	// Stray counts packets from other addresses (dropped); Rejected counts
	// packets from the peer's address that failed a check (forged,
	// altered, replayed, stale); Dropped counts authentic datagrams a full
	// receive queue had no room for (xudp only).
	Stray, Rejected, Dropped uint64
}

// pathConfig is the resolved keepalive configuration of a path.
type pathConfig struct {
	keepaliveInterval time.Duration
	keepaliveTimeout  time.Duration
	maxClockSkew      time.Duration
	socketBuffer      int
	logger            *slog.Logger
}

// path is one punched 5-tuple after the punch: it owns the socket, drops
// what does not come from the peer or does not authenticate, answers and
// sends control packets, keeps the NAT mapping alive and declares the path
// dead after keepaliveTimeout of silence. Data frames go up to the layer
// above (KCP or xudp) through readData.
type path struct {
	conn   *net.UDPConn
	remote netip.AddrPort
	role   Role
	cfg    pathConfig
	log    *slog.Logger

	ctl    *ctlKey
	guard  *ctlGuard
	sealer *frameSealer
	opener *frameOpener // used by the single reader only

	start    time.Time    // monotonic base of lastRecv
	lastRecv atomic.Int64 // ns since start of the last authentic packet
	rtt      atomic.Int64
	kaSeq    atomic.Uint32
	kaIv     atomic.Int64  // the keepalive interval now (setKeepaliveInterval)
	kaWake   chan struct{} // tells the keepalive loop the interval changed
	kaMu     sync.Mutex
	kaSent   map[uint32]time.Time // outstanding keepalives, for RTT

	pktOut, pktIn, bytesOut, bytesIn atomic.Uint64
	stray, rejected, dropped         atomic.Uint64

	bufs  sync.Pool    // *[]byte for sealing
	sendq chan *[]byte // sealed data frames for batchSend; nil: sent at once
	rb    *recvBatch   // batched reads (KCP paths); used by the reader only
	gso   *gsoState    // segmentation offload; used by batchSend only, nil when off

	done      chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	cause     error
	wg        sync.WaitGroup
}

func newPath(conn *net.UDPConn, remote netip.AddrPort, secret []byte, session SessionID, role Role, kind frameKind, cfg pathConfig) (*path, error) {
	if conn == nil {
		return nil, errors.New("xtcp: nil conn")
	}
	if err := checkKey(secret); err != nil {
		return nil, err
	}
	if session.IsZero() {
		return nil, errors.New("xtcp: zero session ID")
	}
	if !role.valid() {
		return nil, fmt.Errorf("xtcp: invalid role %d", uint8(role))
	}
	remote = unmapAP(remote)
	if err := (Candidate{Addr: remote, Kind: PeerReflexive}).Validate(); err != nil {
		return nil, fmt.Errorf("xtcp: remote: %w", err)
	}
	log := cfg.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &path{
		conn:   conn,
		remote: remote,
		role:   role,
		cfg:    cfg,
		log:    log.With("peer", remote, "role", role),
		ctl:    newCtlKey(secret, session),
		guard:  newCtlGuard(role, cfg.maxClockSkew),
		sealer: newFrameSealer(secret, session, kind, role),
		opener: newFrameOpener(secret, session, kind, role.peer()),
		start:  time.Now(),
		kaSent: make(map[uint32]time.Time),
		kaWake: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	p.kaIv.Store(int64(cfg.keepaliveInterval))
	if cfg.socketBuffer > 0 {
		// Best effort: the kernel caps these at net.core.[rw]mem_max.
		conn.SetReadBuffer(cfg.socketBuffer)
		conn.SetWriteBuffer(cfg.socketBuffer)
	}
	return p, nil
}

// run starts the keepalive loop. The first keepalive goes out at once: it
// tells an owner still waiting in Punch that the visitor is on the path.
func (p *path) run() {
	p.wg.Add(1)
	go p.keepalive()
}

func (p *path) now() int64 { return int64(time.Since(p.start)) }

func (p *path) touch() { p.lastRecv.Store(p.now()) }

func (p *path) silence() time.Duration { return time.Duration(p.now() - p.lastRecv.Load()) }

// setKeepaliveInterval changes the keepalive interval from now on; the
// keepalive timeout stays. d must be positive and shorter than the
// timeout.
func (p *path) setKeepaliveInterval(d time.Duration) error {
	if d <= 0 || d >= p.cfg.keepaliveTimeout {
		return fmt.Errorf("%w: keepalive interval %v must be positive and shorter than the keepalive timeout %v", ErrInvalidInterval, d, p.cfg.keepaliveTimeout)
	}
	if time.Duration(p.kaIv.Swap(int64(d))) != d {
		select {
		case p.kaWake <- struct{}{}:
		default:
		}
	}
	return nil
}

func (p *path) keepaliveInterval() time.Duration { return time.Duration(p.kaIv.Load()) }

func (p *path) keepalive() {
	defer p.wg.Done()
	to := p.cfg.keepaliveTimeout
	iv := p.keepaliveInterval()
	tick := min(iv, to/4)
	t := time.NewTimer(tick)
	defer t.Stop()
	p.sendKeepalive()
	lastSent := time.Now()
	for {
		// Wake at the next tick, or when the next keepalive is due if
		// that is sooner: a timer never fires early, so a keepalive is
		// never put off to the tick after (which, with the interval a
		// multiple of the tick, would double the interval).
		t.Reset(max(0, min(tick, iv-time.Since(lastSent))))
		select {
		case <-p.done:
			return
		case <-p.kaWake:
			// A new interval: the next keepalive is due an interval
			// after the last one sent, at once if that has passed.
			iv = p.keepaliveInterval()
			tick = min(iv, to/4)
			continue
		case <-t.C:
		}
		silence := p.silence()
		if silence >= to {
			p.log.Info("p2p path dead", "silence", silence.Round(time.Millisecond), "keepaliveTimeout", to)
			p.fail(fmt.Errorf("%w: nothing authentic from %v for %v (keepalive timeout %v)", ErrPathDead, p.remote, silence.Round(time.Millisecond), to))
			return
		}
		// Every interval; every tick once the peer has been quiet for an
		// interval, so that one lost keepalive does not cost the path.
		if since := time.Since(lastSent); since >= iv || (silence >= iv && since >= tick) {
			p.sendKeepalive()
			lastSent = time.Now()
		}
	}
}

func (p *path) sendKeepalive() {
	seq := p.kaSeq.Add(1)
	now := time.Now()
	p.kaMu.Lock()
	for s, at := range p.kaSent {
		if now.Sub(at) > p.cfg.keepaliveTimeout {
			delete(p.kaSent, s)
		}
	}
	p.kaSent[seq] = now
	p.kaMu.Unlock()
	p.sendCtl(ctlKeepalive, seq)
}

func (p *path) sendCtl(typ ctlType, seq uint32) {
	var b [ctlLen]byte
	p.write(p.ctl.seal(b[:0], typ, p.role, seq, time.Now()))
}

// write sends one UDP payload to the peer. Transient errors are ignored
// (UDP may lose packets anyway; the keepalive decides whether the path
// works); it fails only once the path is closed.
func (p *path) write(b []byte) error {
	_, err := p.conn.WriteToUDPAddrPort(b, p.remote)
	if err != nil {
		select {
		case <-p.done:
			return p.err()
		default:
		}
		if errors.Is(err, net.ErrClosed) {
			return p.err()
		}
		p.log.Debug("p2p send failed", "err", err)
		return nil
	}
	p.pktOut.Add(1)
	p.bytesOut.Add(uint64(len(b)))
	return nil
}

// writeData seals payload into a data frame and sends it.
func (p *path) writeData(payload []byte) error {
	bp, _ := p.bufs.Get().(*[]byte)
	if need := len(payload) + FrameOverhead; bp == nil || cap(*bp) < need {
		b := make([]byte, 0, max(need, 1536))
		bp = &b
	}
	b := p.sealer.seal((*bp)[:0], payload)
	err := p.write(b)
	*bp = b
	p.bufs.Put(bp)
	return err
}

// readData reads from the socket until a data frame from the peer arrives
// and returns its payload, a slice of buf or (with batched reads) of the
// batch, valid until the next call. It handles control
// packets on the way. Only one goroutine may call it. It fails once the
// path is closed, with the cause.
func (p *path) readData(buf []byte) ([]byte, error) {
	for {
		b, from, err := p.readPacket(buf)
		if err != nil {
			select {
			case <-p.done:
				return nil, p.err()
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				p.fail(fmt.Errorf("xtcp: socket closed under the path: %w", err))
				return nil, p.err()
			}
			if transientReadError(err) {
				continue
			}
			p.fail(fmt.Errorf("xtcp: read: %w", err))
			return nil, p.err()
		}
		if unmapAP(from) != p.remote {
			p.stray.Add(1)
			continue
		}
		n := len(b)
		if isCtl(b) {
			p.handleCtl(b)
			continue
		}
		pt, err := p.opener.open(b)
		if err != nil {
			p.rejected.Add(1)
			continue
		}
		p.accounted(n)
		return pt, nil
	}
}

func (p *path) accounted(n int) {
	p.touch()
	p.pktIn.Add(1)
	p.bytesIn.Add(uint64(n))
}

// transientReadError reports errors of an unconnected UDP socket that say
// nothing about the path: ICMP errors some systems report, a full buffer.
func transientReadError(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN)
}

// handleCtl answers an authentic control packet from the peer. Late punch
// packets are answered too: the peer may still be in Punch.
func (p *path) handleCtl(b []byte) {
	now := time.Now()
	pkt, err := p.ctl.open(b)
	if err == nil {
		err = p.guard.check(pkt, now)
	}
	if err != nil {
		p.rejected.Add(1)
		return
	}
	p.accounted(len(b))
	switch pkt.Type {
	case ctlProbe:
		p.sendCtl(ctlProbeAck, pkt.Seq)
		if p.role == RoleOwner {
			// The visitor still probes: it missed our Selected.
			p.sendCtl(ctlSelected, 0)
		}
	case ctlSelected:
		if p.role == RoleVisitor {
			p.sendCtl(ctlSelectedAck, pkt.Seq)
		}
	case ctlKeepalive:
		p.sendCtl(ctlKeepaliveAck, pkt.Seq)
	case ctlKeepaliveAck:
		p.kaMu.Lock()
		at, ok := p.kaSent[pkt.Seq]
		delete(p.kaSent, pkt.Seq)
		p.kaMu.Unlock()
		if ok {
			p.rtt.Store(int64(now.Sub(at)))
		}
	case ctlClose:
		p.log.Info("p2p path closed by the peer")
		p.fail(ErrPeerClosed)
	}
}

// fail records err as the cause if it is the first, and closes the path
// and its socket. It does not wait.
func (p *path) fail(err error) {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.cause = err
		p.mu.Unlock()
		close(p.done)
		p.conn.Close()
	})
}

// close tells the peer (best effort) and closes the path with ErrClosed.
func (p *path) close() {
	select {
	case <-p.done:
	default:
		// Twice: one loss must not leave the peer waiting for a timeout.
		p.sendCtl(ctlClose, 0)
		p.sendCtl(ctlClose, 1)
	}
	p.fail(ErrClosed)
}

// wait waits for the path's goroutines.
func (p *path) wait() { p.wg.Wait() }

// err returns the cause, or nil while the path is open.
func (p *path) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cause
}

func (p *path) stats() PathStats {
	return PathStats{
		Remote:          p.remote,
		RTT:             time.Duration(p.rtt.Load()),
		LastReceived:    p.start.Add(time.Duration(p.lastRecv.Load())),
		PacketsSent:     p.pktOut.Load(),
		PacketsReceived: p.pktIn.Load(),
		BytesSent:       p.bytesOut.Load(),
		BytesReceived:   p.bytesIn.Load(),
		Stray:           p.stray.Load(),
		Rejected:        p.rejected.Load(),
		Dropped:         p.dropped.Load(),
	}
}
