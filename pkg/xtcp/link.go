package xtcp

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// A Link carries one visitor↔owner conversation's packets (an xtcp
// session's KCP packets, or an xudp path's datagrams) over whichever
// carrier works best at the moment: a punched UDP path, a punched TCP
// connection, or a stream relayed by the server. Carriers come and go
// underneath while the conversation goes on: a connection starts on the
// relay at once, moves to a direct carrier when one is attached, and back
// to the relay when the direct one stops answering, without a reset (KCP
// retransmits what a switch loses; datagrams are datagrams).
//
// Sending picks, per packet, the first usable carrier in the order UDP,
// TCP, relay. A direct carrier is unusable while it is stalled: packets
// went out on it for StallAfter and nothing came back since (a black-holed
// path). A stalled carrier is poked (a keepalive, where the carrier can)
// and is used again as soon as anything arrives on it; one that stays
// silent for its keepalive timeout ends and is detached. The relay is never
// considered stalled: it is the server's reliable stream, and the last
// resort.
type Link struct {
	cfg   LinkConfig
	log   *slog.Logger
	start time.Time
	in    chan *[]byte
	bufs  sync.Pool

	mu       sync.Mutex
	carriers [numCarrierKinds]*attached // by kind-1
	lastErr  error                      // why the last carrier ended
	linger   *time.Timer

	list atomic.Pointer[[]*attached] // attached carriers, in preference order
	cur  atomic.Uint32               // the kind last used for sending, 0 none
	need atomic.Int64                // when NeedCarrier was last called (ns since start)

	dropped atomic.Uint64
	tuner   atomic.Pointer[func(CarrierKind)] // the session's, told of every switch
	kcp     atomic.Bool                       // the link carries KCP packets (see resend.go)
	resent  atomic.Uint64                     // retransmissions a reliable carrier did not need
	kaIv    atomic.Int64                      // SetKeepaliveInterval's, 0: never set

	done      chan struct{}
	closeOnce sync.Once
	cause     error
	wg        sync.WaitGroup
}

// CarrierKind names a kind of carrier; a link holds at most one of each.
type CarrierKind uint8

// Carrier kinds, in the order sending prefers them.
const (
	CarrierUDP      CarrierKind = iota + 1 // a punched UDP path (UDPCarrier)
	CarrierTCP                             // a punched TCP connection
	CarrierRelay                           // a stream relayed by the server (StreamCarrier)
	numCarrierKinds = 3
)

func (k CarrierKind) String() string {
	switch k {
	case CarrierUDP:
		return "udp"
	case CarrierTCP:
		return "tcp"
	case CarrierRelay:
		return "relay"
	case 0:
		return "none"
	}
	return fmt.Sprintf("carrier(%d)", uint8(k))
}

// reliable reports whether a carrier of kind k delivers every packet it
// takes, in order, while it lives: a stream.
func (k CarrierKind) reliable() bool { return k == CarrierTCP || k == CarrierRelay }

// Direct reports whether k bypasses the server.
func (k CarrierKind) Direct() bool { return k == CarrierUDP || k == CarrierTCP }

// A Carrier moves a link's packets to the peer and back. Its packets are
// authenticated and encrypted by the carrier itself, under keys only the
// two peers have.
type Carrier interface {
	// SendPacket sends one packet. It may drop it (a full queue, a lost
	// datagram) but never blocks for long.
	SendPacket(b []byte) error
	// RecvPacket waits for the next packet from the peer and copies it
	// into b.
	RecvPacket(b []byte) (int, error)
	// Silence is the time since anything authentic came from the peer.
	Silence() time.Duration
	// RTT is the last measured round trip, 0 before the first.
	RTT() time.Duration
	// Done is closed when the carrier has ended; Err says why.
	Done() <-chan struct{}
	Err() error
	// Close ends the carrier, telling the peer where it can; idempotent.
	Close() error
}

// Poker is a Carrier that can be asked to prove at once that it still
// works: it sends a keepalive that the peer answers.
type Poker interface{ Poke() }

// LinkConfig configures a Link. The zero LinkConfig means the defaults.
type LinkConfig struct {
	// StallAfter: a direct carrier on which packets went out this long
	// with nothing back since is not used for sending until something
	// arrives on it. Default 1 s; at least 50 ms.
	StallAfter time.Duration
	// Linger is how long the link lives with no carrier at all, waiting
	// for one to be attached; then it ends with ErrNoCarrier. Zero: it
	// ends with its last carrier, with that carrier's cause.
	Linger time.Duration
	// QueueLen bounds received packets waiting for Recv; beyond it they
	// are dropped (counted). Default 1024.
	QueueLen int
	// OnSwitch, if set, is called when the carrier used for sending
	// changes (to is 0 when none is left). It must not block.
	OnSwitch func(from, to CarrierKind)
	// NeedCarrier, if set, is called (in a goroutine of its own, at most
	// once per StallAfter) when a packet finds no usable carrier: the
	// visitor opens a relay then.
	NeedCarrier func()
	// Logger gets one line per carrier attached or lost; nil discards.
	Logger *slog.Logger
}

// Defaults of LinkConfig.
const (
	DefaultStallAfter   = time.Second
	DefaultLinkQueueLen = 1024
)

func (c LinkConfig) withDefaults() (LinkConfig, error) {
	if c.StallAfter == 0 {
		c.StallAfter = DefaultStallAfter
	}
	if c.StallAfter < 50*time.Millisecond {
		return c, fmt.Errorf("xtcp: link stallAfter %v: want at least 50ms", c.StallAfter)
	}
	if c.Linger < 0 {
		return c, fmt.Errorf("xtcp: negative link linger %v", c.Linger)
	}
	if c.QueueLen == 0 {
		c.QueueLen = DefaultLinkQueueLen
	}
	if c.QueueLen < 0 {
		return c, fmt.Errorf("xtcp: negative link queueLen %d", c.QueueLen)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// ErrNoCarrier: a link had no carrier for its Linger time.
var ErrNoCarrier = errors.New("xtcp: link has no carrier")

// attached is a carrier on a link, with the link's view of it.
type attached struct {
	kind CarrierKind
	c    Carrier
	poke Poker // nil if the carrier cannot be poked
	// unanswered is when the first packet went out since the carrier last
	// heard from the peer (ns since the link's start), 0 when none.
	unanswered atomic.Int64
	pokedAt    atomic.Int64
	sent       *sentSet // a reliable carrier of a KCP link: the segments it took
	pktOut     atomic.Uint64
	pktIn      atomic.Uint64
	bytesOut   atomic.Uint64
	bytesIn    atomic.Uint64
}

// NewLink makes a link with no carrier yet; Attach gives it some.
func NewLink(cfg LinkConfig) (*Link, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Link{cfg: cfg, log: cfg.Logger, start: time.Now(), in: make(chan *[]byte, cfg.QueueLen), done: make(chan struct{})}
	l.list.Store(&[]*attached{})
	return l, nil
}

func (l *Link) now() int64 { return int64(time.Since(l.start)) }

// Attach gives the link a carrier of the given kind, replacing (and
// closing) the one of that kind it had. The link owns the carrier from
// then on: it closes it when it ends or replaces it. Attaching to a link
// that has ended closes the carrier and returns the link's cause.
func (l *Link) Attach(kind CarrierKind, c Carrier) error {
	if kind < CarrierUDP || kind > CarrierRelay {
		c.Close()
		return fmt.Errorf("xtcp: attach: unknown carrier kind %d", uint8(kind))
	}
	a := &attached{kind: kind, c: c}
	a.poke, _ = c.(Poker)
	if kind.reliable() {
		a.sent = new(sentSet) // used once the link carries KCP
	}
	l.mu.Lock()
	select {
	case <-l.done:
		l.mu.Unlock()
		c.Close()
		return l.Err()
	default:
	}
	old := l.carriers[kind-1]
	l.carriers[kind-1] = a
	l.publish()
	if l.linger != nil {
		l.linger.Stop()
		l.linger = nil
	}
	l.wg.Add(1)
	l.mu.Unlock()
	if old != nil {
		old.c.Close()
	}
	if iv := time.Duration(l.kaIv.Load()); iv > 0 {
		if ks, ok := c.(KeepaliveSetter); ok {
			if err := ks.SetKeepaliveInterval(iv); err != nil {
				l.log.Info("link keepalive interval not applied to the new carrier", "carrier", kind, "error", err)
			}
		}
	}
	l.log.Info("link carrier attached", "carrier", kind)
	go l.read(a)
	return nil
}

// KeepaliveSetter is a Carrier whose keepalive interval can be changed
// while it runs (UDPCarrier).
type KeepaliveSetter interface {
	SetKeepaliveInterval(d time.Duration) error
}

// SetKeepaliveInterval sets the keepalive interval of the link's carriers
// that have one (the UDP path), now and for carriers attached later, and
// of an xtcp Session's ping over the link. d must be positive and shorter
// than each carrier's keepalive timeout: a carrier that refuses it keeps
// its interval, and the errors are returned (wrapping
// ErrInvalidInterval). Safe from any goroutine.
func (l *Link) SetKeepaliveInterval(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%w: %v is not positive", ErrInvalidInterval, d)
	}
	l.kaIv.Store(int64(d))
	var errs []error
	for _, a := range *l.list.Load() {
		if ks, ok := a.c.(KeepaliveSetter); ok {
			if err := ks.SetKeepaliveInterval(d); err != nil {
				errs = append(errs, fmt.Errorf("%v carrier: %w", a.kind, err))
			}
		}
	}
	return errors.Join(errs...)
}

// KeepaliveInterval is the interval SetKeepaliveInterval set last, 0 if
// it was never called.
func (l *Link) KeepaliveInterval() time.Duration { return time.Duration(l.kaIv.Load()) }

// publish rebuilds the sending order; l.mu must be held.
func (l *Link) publish() {
	list := make([]*attached, 0, numCarrierKinds)
	for _, a := range l.carriers {
		if a != nil {
			list = append(list, a)
		}
	}
	l.list.Store(&list)
}

// smallPacket is the size of the pooled packet buffers: every KCP packet
// and most datagrams fit. A larger packet gets a buffer of its own size.
const smallPacket = 2048

// getBuf returns a buffer of length n, pooled when n fits smallPacket, so
// that a queue of a thousand small packets holds 2 MiB, not 64.
func (l *Link) getBuf(n int) *[]byte {
	if n > smallPacket {
		b := make([]byte, n)
		return &b
	}
	bp, ok := l.bufs.Get().(*[]byte)
	if !ok {
		b := make([]byte, smallPacket)
		bp = &b
	}
	*bp = (*bp)[:n]
	return bp
}

// putBuf returns a buffer of getBuf to the pool.
func (l *Link) putBuf(bp *[]byte) {
	if cap(*bp) == smallPacket {
		l.bufs.Put(bp)
	}
}

// read moves a carrier's packets to the receive queue until it ends, then
// detaches it.
func (l *Link) read(a *attached) {
	defer l.wg.Done()
	scratch := make([]byte, 65536)
	for {
		n, err := a.c.RecvPacket(scratch)
		if err != nil {
			break
		}
		a.pktIn.Add(1)
		a.bytesIn.Add(uint64(n))
		bp := l.getBuf(n)
		copy(*bp, scratch[:n])
		if a.kind.reliable() {
			// A stream carrier must not lose what it took (resend.go):
			// it waits for room, and the stream pushes back.
			select {
			case l.in <- bp:
				continue
			case <-l.done:
				l.putBuf(bp)
			}
			break
		}
		select {
		case l.in <- bp:
		default:
			l.dropped.Add(1)
			l.putBuf(bp)
		}
	}
	l.detach(a)
}

// detach removes a carrier that ended (or was replaced) and closes it.
func (l *Link) detach(a *attached) {
	a.c.Close()
	cause := a.c.Err()
	if cause == nil {
		cause = ErrClosed
	}
	l.mu.Lock()
	if l.carriers[a.kind-1] != a {
		l.mu.Unlock() // replaced: the new one is in place
		return
	}
	l.carriers[a.kind-1] = nil
	l.lastErr = cause
	l.publish()
	empty := len(*l.list.Load()) == 0
	ended := false
	select {
	case <-l.done:
		ended = true
	default:
	}
	if empty && !ended && l.cfg.Linger > 0 && l.linger == nil {
		l.linger = time.AfterFunc(l.cfg.Linger, func() {
			l.mu.Lock()
			still := len(*l.list.Load()) == 0
			l.mu.Unlock()
			if still {
				l.fail(fmt.Errorf("%w for %v (the last one ended: %v)", ErrNoCarrier, l.cfg.Linger, cause))
			}
		})
	}
	l.mu.Unlock()
	if ended {
		return
	}
	l.log.Info("link carrier lost", "carrier", a.kind, "cause", cause)
	if errors.Is(cause, io.EOF) { // a stream's clean end: the peer closed the link
		l.fail(fmt.Errorf("%w: it closed the link", ErrPeerClosed))
		return
	}
	if empty && l.cfg.Linger == 0 {
		l.fail(cause)
		return
	}
	if uint32(a.kind) == l.cur.Load() {
		l.switchTo(l.pick(l.now()))
	}
}

// usable reports whether a carrier may carry the next packet: not
// stalled. A stalled one is poked.
func (l *Link) usable(a *attached, now int64) bool {
	if a.kind == CarrierRelay {
		return true
	}
	u := a.unanswered.Load()
	if u == 0 {
		return true
	}
	if heard := now - int64(a.c.Silence()); heard >= u {
		a.unanswered.CompareAndSwap(u, 0)
		return true
	}
	if time.Duration(now-u) < l.cfg.StallAfter {
		return true
	}
	l.maybePoke(a, now)
	return false
}

// maybePoke pokes a carrier at most four times per StallAfter.
func (l *Link) maybePoke(a *attached, now int64) {
	if a.poke == nil {
		return
	}
	if p := a.pokedAt.Load(); now-p >= int64(l.cfg.StallAfter/4) && a.pokedAt.CompareAndSwap(p, now) {
		a.poke.Poke()
	}
}

// pick returns the carrier the next packet goes on: the first usable one;
// if none is, the most preferred one (nil without carriers).
func (l *Link) pick(now int64) *attached {
	list := *l.list.Load()
	for _, a := range list {
		if l.usable(a, now) {
			return a
		}
	}
	if len(list) > 0 {
		return list[0]
	}
	return nil
}

func (l *Link) switchTo(a *attached) {
	var to CarrierKind
	if a != nil {
		to = a.kind
	}
	from := CarrierKind(l.cur.Swap(uint32(to)))
	if from != to {
		l.log.Debug("link switched carrier", "from", from, "to", to)
		if f := l.tuner.Load(); f != nil {
			(*f)(to)
		}
		if l.cfg.OnSwitch != nil {
			l.cfg.OnSwitch(from, to)
		}
	}
}

// Send sends one packet on the best carrier at the moment. Like UDP it
// does not wait for delivery: without a usable carrier the packet is lost
// (and NeedCarrier called). It fails only for a packet larger than
// MaxDatagramSize or a link that has ended.
func (l *Link) Send(b []byte) error {
	if len(b) > MaxDatagramSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(b), MaxDatagramSize)
	}
	select {
	case <-l.done:
		return l.Err()
	default:
	}
	now := l.now()
	a := l.pick(now)
	if a == nil || (a.kind.Direct() && !l.usable(a, now)) {
		l.wantCarrier(now)
	}
	if uint32(kindOf(a)) != l.cur.Load() {
		l.switchTo(a)
	}
	if a == nil {
		l.dropped.Add(1)
		return nil
	}
	if a.kind != CarrierRelay {
		a.unanswered.CompareAndSwap(0, now)
		if a.c.Silence() >= l.cfg.StallAfter/2 {
			l.maybePoke(a, now) // a one-way flow keeps proving the path
		}
	}
	if a.sent != nil && l.kcp.Load() {
		return l.sendOnce(a, b)
	}
	if a.c.SendPacket(b) == nil {
		a.pktOut.Add(1)
		a.bytesOut.Add(uint64(len(b)))
	}
	return nil
}

// sendOnce sends a KCP packet on a reliable carrier without the segments
// it already took (resend.go).
func (l *Link) sendOnce(a *attached, b []byte) error {
	bp := l.getBuf(0)
	defer l.putBuf(bp)
	var arr [8]uint32
	out, sns := a.sent.filter(b, (*bp)[:0], arr[:0])
	if len(out) < len(b) {
		l.resent.Add(1)
	}
	if len(out) == 0 {
		return nil
	}
	if a.c.SendPacket(out) == nil {
		a.sent.taken(sns)
		a.pktOut.Add(1)
		a.bytesOut.Add(uint64(len(out)))
	}
	return nil
}

func kindOf(a *attached) CarrierKind {
	if a == nil {
		return 0
	}
	return a.kind
}

func (l *Link) wantCarrier(now int64) {
	if l.cfg.NeedCarrier == nil {
		return
	}
	if p := l.need.Load(); (p == 0 || now-p >= int64(l.cfg.StallAfter)) && l.need.CompareAndSwap(p, now) {
		go l.cfg.NeedCarrier()
	}
}

// Recv waits for the next packet from the peer, on any carrier, and copies
// it into b (cut to len(b), with io.ErrShortBuffer). Once the link has
// ended it returns the cause.
func (l *Link) Recv(b []byte) (int, error) {
	select {
	case bp := <-l.in:
		return l.deliver(b, bp)
	default:
	}
	select {
	case bp := <-l.in:
		return l.deliver(b, bp)
	case <-l.done:
		return 0, l.Err()
	}
}

func (l *Link) deliver(b []byte, bp *[]byte) (int, error) {
	n, err := copyPacket(b, *bp)
	l.putBuf(bp)
	return n, err
}

// Current is the carrier the last packet went on (0 before the first).
func (l *Link) Current() CarrierKind { return CarrierKind(l.cur.Load()) }

// Has reports whether a carrier of kind k is attached.
func (l *Link) Has(k CarrierKind) bool {
	if k < CarrierUDP || k > CarrierRelay {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.carriers[k-1] != nil
}

// Carriers is the number of carriers attached.
func (l *Link) Carriers() int { return len(*l.list.Load()) }

// Silence is the shortest silence of the attached carriers (how long ago
// the peer was last heard on any of them); a link without carriers has
// been silent since its start.
func (l *Link) Silence() time.Duration {
	s := time.Since(l.start)
	for _, a := range *l.list.Load() {
		s = min(s, a.c.Silence())
	}
	return s
}

// DropCurrent ends the direct carrier packets currently go on, with cause,
// if another carrier remains to take over; it reports whether it did.
// Session uses it when KCP stalls on a carrier whose keepalives pass.
func (l *Link) DropCurrent(cause error) bool {
	l.mu.Lock()
	k := CarrierKind(l.cur.Load())
	var a *attached
	if k.Direct() {
		a = l.carriers[k-1]
	}
	others := len(*l.list.Load()) > 1
	l.mu.Unlock()
	if a == nil || !others {
		return false
	}
	if f, ok := a.c.(interface{ Fail(error) }); ok {
		f.Fail(cause)
	} else {
		a.c.Close()
	}
	return true
}

// CarrierStats are a link's counters of one carrier kind while attached.
type CarrierStats struct {
	Kind                         CarrierKind
	PacketsSent, PacketsReceived uint64
	BytesSent, BytesReceived     uint64
	RTT                          time.Duration
}

// LinkStats are a link's counters.
type LinkStats struct {
	Current  CarrierKind
	Carriers []CarrierStats // the attached ones, in preference order
	Dropped  uint64         // packets lost to a full queue or no carrier
	// Unresent counts KCP packets a reliable carrier sent without the
	// retransmissions of segments it had already taken.
	Unresent uint64
}

// Stats returns the link's counters.
func (l *Link) Stats() LinkStats {
	s := LinkStats{Current: l.Current(), Dropped: l.dropped.Load(), Unresent: l.resent.Load()}
	for _, a := range *l.list.Load() {
		s.Carriers = append(s.Carriers, CarrierStats{Kind: a.kind, PacketsSent: a.pktOut.Load(), PacketsReceived: a.pktIn.Load(),
			BytesSent: a.bytesOut.Load(), BytesReceived: a.bytesIn.Load(), RTT: a.c.RTT()})
	}
	return s
}

// fail ends the link with cause if it is the first, closing its carriers.
func (l *Link) fail(cause error) {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.cause = cause
		close(l.done)
		var cs []Carrier
		for i, a := range l.carriers {
			if a != nil {
				cs = append(cs, a.c)
				l.carriers[i] = nil
			}
		}
		l.publish()
		if l.linger != nil {
			l.linger.Stop()
		}
		l.mu.Unlock()
		for _, c := range cs {
			c.Close()
		}
	})
}

// Close ends the link and its carriers (they tell the peer where they can)
// and waits for its goroutines. Safe to call more than once; it returns
// nil.
func (l *Link) Close() error {
	l.fail(ErrClosed)
	l.wg.Wait()
	return nil
}

// Done is closed when the link has ended.
func (l *Link) Done() <-chan struct{} { return l.done }

// Err returns why the link ended, or nil while it runs.
func (l *Link) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cause
}
