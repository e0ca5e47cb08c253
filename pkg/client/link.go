package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/backoff"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/seal"
	"github.com/hopproxy/hop/pkg/xtcp"
)

// Relay-first links. An xtcp or xudp visitor talks to the proxy's owner
// over one link (xtcp.Link) per visitor entry: a conversation whose packets
// travel over the server's relay from the first connection on, and over a
// punched direct path as soon as one exists, switching per packet without
// resetting a connection (KCP under xtcp's streams retransmits what a
// switch loses). So a connection never waits for a punch; it starts at
// relay latency and moves to the direct path when the punch succeeds, and
// back to the relay when the direct path stops answering.
//
// The visitor makes the link when its first connection (or datagram)
// comes: it opens the relay (a visit, pkg/visit, whose first sealed record
// is a LinkHello naming the link) and starts a punch attempt beside it;
// the punch's sealed P2PInfo names the link too, so the owner attaches the
// punched path to it.

// Errors of links.
var (
	// errLinkUnknown: the owner does not know the link a relay tried to
	// resume (the owner restarted); the link's connections end.
	errLinkUnknown = errors.New("the proxy's owner does not know this link any more (it restarted?)")
	errLinkClosed  = errors.New("the visitor is shutting down")
)

// Timing of links.
const (
	// ownerLinkLinger is how long an owner keeps a link that has lost all
	// its carriers, for the visitor to come back (over a new relay after
	// the server restarted, say).
	ownerLinkLinger = 60 * time.Second
	// relayRetryMin and relayRetryMax bound the visitor's backoff when
	// reopening a link's relay.
	relayRetryMin = 200 * time.Millisecond
	relayRetryMax = 10 * time.Second
)

// linkConv is the KCP conversation ID of a link: both ends take it from
// the link ID.
func linkConv(id protocol.LinkID) uint32 { return binary.BigEndian.Uint32(id[:4]) }

// payloadOf is what a proxy type's link carries.
func payloadOf(t config.ProxyType) xtcp.Payload {
	if t == config.ProxyXUDP {
		return xtcp.PayloadDatagrams
	}
	return xtcp.PayloadKCP
}

// linkConn is one link of a visitor: for xtcp with the KCP session on it.
type linkConn struct {
	id   protocol.LinkID
	link *xtcp.Link
	sess *xtcp.Session // xtcp; nil for xudp
}

// close ends the link and what runs on it.
func (lc *linkConn) close() {
	if lc.sess != nil {
		lc.sess.Close()
	} else {
		lc.link.Close()
	}
}

// p2pLink is a visitor's side of its links to the owner of an xtcp or
// xudp proxy: the current link, the punch attempts that give it a direct
// carrier (at most one at a time, retried at most once per retryInterval
// while connections keep coming), and its relay, reopened when it ends.
type p2pLink struct {
	v *visitor

	mu        sync.Mutex
	cur       *linkConn
	creating  chan struct{} // closed when the link being made is ready
	createErr error
	running   chan struct{} // closed when the current attempt ends
	last      time.Time     // start of the last attempt
	lastErr   error
	demand    time.Time
	closed    bool
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

func newP2PLink(v *visitor) *p2pLink {
	ctx, cancel := context.WithCancel(context.Background())
	return &p2pLink{v: v, ctx: ctx, cancel: cancel}
}

// get returns the live link, making one (with its relay) if there is none.
func (l *p2pLink) get() (*linkConn, error) {
	l.mu.Lock()
	l.demand = time.Now()
	for {
		if l.closed {
			l.mu.Unlock()
			return nil, errLinkClosed
		}
		if lc := l.cur; lc != nil {
			select {
			case <-lc.link.Done():
				l.cur = nil
			default:
				if lc.link.Carriers() > 0 {
					l.mu.Unlock()
					return lc, nil
				}
				// Neither relay nor direct path now: new connections go on
				// a new link; this one's go on if it gets a carrier back.
				l.cur = nil
			}
		}
		ch := l.creating
		if ch == nil {
			break
		}
		l.mu.Unlock()
		<-ch
		l.mu.Lock()
		if l.cur == nil && l.createErr != nil {
			err := l.createErr
			l.mu.Unlock()
			return nil, err
		}
	}
	ch := make(chan struct{})
	l.creating = ch
	l.mu.Unlock()
	lc, err := l.create()
	l.mu.Lock()
	l.creating, l.createErr = nil, err
	if err == nil {
		l.cur = lc
		l.last = time.Time{}
		l.start(lc, true)
	}
	close(ch)
	l.mu.Unlock()
	return lc, err
}

// create makes a link: its relay first, so the first packet has a carrier.
func (l *p2pLink) create() (*linkConn, error) {
	v := l.v
	lc := &linkConn{}
	rand.Read(lc.id[:])
	log := v.log.With("link", lc.id.String()[:8])
	link, err := xtcp.NewLink(xtcp.LinkConfig{
		Linger:   v.cfg.KeepaliveTimeout.Duration,
		OnSwitch: func(from, to xtcp.CarrierKind) { l.switched(log, from, to) },
		Logger:   log,
	})
	if err != nil {
		return nil, err
	}
	lc.link = link
	if err := l.openRelay(lc, false); err != nil {
		link.Close()
		return nil, err
	}
	if v.cfg.Type == config.ProxyXTCP {
		s, err := xtcp.NewLinkSession(link, xtcp.RoleVisitor, linkConv(lc.id), l.sessionConfig())
		if err != nil {
			link.Close()
			return nil, err
		}
		lc.sess = s
	} else {
		l.wg.Add(1)
		go func() { // datagrams from the owner → their flows
			defer l.wg.Done()
			buf := make([]byte, 65536)
			for {
				n, err := link.Recv(buf)
				if err != nil {
					return
				}
				v.deliverDirect(buf[:n])
			}
		}()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		<-link.Done()
		l.mu.Lock()
		if l.cur == lc {
			l.cur = nil
		}
		closed := l.closed
		l.mu.Unlock()
		if !closed {
			log.Info("P2P link ended; the next connection makes a new one", "cause", link.Err())
		}
	}()
	log.Info("P2P link started over the relay; punching for a direct path")
	return lc, nil
}

func (l *p2pLink) sessionConfig() xtcp.SessionConfig {
	return xtcp.SessionConfig{KeepaliveInterval: p2pSessionInterval(l.v.cfg),
		KeepaliveTimeout: l.v.cfg.KeepaliveTimeout.Duration, Logger: l.v.log}
}

// switched logs the moves between the relay and a direct carrier.
func (l *p2pLink) switched(log interface {
	Info(string, ...any)
}, from, to xtcp.CarrierKind) {
	switch {
	case to.Direct() && !from.Direct():
		log.Info("connections moved to the direct path", "carrier", to)
	case from.Direct() && to == xtcp.CarrierRelay:
		log.Info("connections moved to the relay: the direct path stopped answering", "carrier", from)
	case from == xtcp.CarrierUDP && to == xtcp.CarrierTCP:
		log.Info("connections moved to the direct TCP path: the UDP path stopped answering")
	case from == xtcp.CarrierTCP && to == xtcp.CarrierUDP:
		log.Info("connections moved back to the direct UDP path")
	}
}

// openRelay opens a relay for lc through the server (a visit of the
// proxy), names the link on it and attaches it. The owner's status comes
// as the relay's first record; a resume the owner refuses ends the link.
func (l *p2pLink) openRelay(lc *linkConn, resume bool) error {
	sc, err := l.v.c.openRelay(l.v.cfg)
	if err != nil {
		return err
	}
	// xtcp streams start with the application connection's addresses
	// (openStream), for the owner's PROXY protocol header.
	hello := protocol.LinkHello{ID: lc.id, Resume: resume, Heads: l.v.cfg.Type == config.ProxyXTCP}
	if err := sc.WriteDatagram(hello.Encode()); err != nil {
		sc.Close()
		return fmt.Errorf("link hello: %w", err)
	}
	c := xtcp.NewStreamCarrier(&statusConn{Conn: sc}, 0)
	if err := lc.link.Attach(xtcp.CarrierRelay, c); err != nil {
		return err
	}
	l.wg.Add(1)
	go l.keepRelay(lc, c)
	return nil
}

// statusConn reads the owner's LinkStatus before the link's packets.
type statusConn struct {
	*seal.Conn
	checked bool // only the carrier's reader uses it
}

func (s *statusConn) ReadDatagram(b []byte) (int, error) {
	if !s.checked {
		var st [16]byte
		n, err := s.Conn.ReadDatagram(st[:])
		if err != nil {
			return 0, err
		}
		code, err := protocol.DecodeLinkStatus(st[:n])
		if err != nil {
			return 0, err
		}
		if code == protocol.LinkUnknown {
			return 0, errLinkUnknown
		}
		s.checked = true
	}
	return s.Conn.ReadDatagram(b)
}

// keepRelay reopens lc's relay when it ends while the link lives, with
// backoff; an owner that no longer knows the link ends it.
func (l *p2pLink) keepRelay(lc *linkConn, c *xtcp.StreamCarrier) {
	defer l.wg.Done()
	select {
	case <-c.Done():
	case <-lc.link.Done():
		return
	}
	if errors.Is(c.Err(), errLinkUnknown) {
		l.v.log.Warn("P2P link ended: "+errLinkUnknown.Error(), "link", lc.id.String()[:8])
		lc.close()
		return
	}
	b := backoff.Backoff{Min: relayRetryMin, Max: relayRetryMax}
	for {
		if !backoff.Sleep(l.ctx, b.Next()) {
			return
		}
		select {
		case <-lc.link.Done():
			return
		default:
		}
		if lc.link.Has(xtcp.CarrierRelay) {
			return
		}
		err := l.openRelay(lc, true)
		if err == nil {
			return
		}
		if b.Attempt() == 1 || l.v.c.due("relay/"+l.v.cfg.Name) {
			l.v.log.Warn("cannot reopen the P2P link's relay; retrying", "error", err, "direct", lc.link.Has(xtcp.CarrierUDP))
		}
	}
}

// start begins a punch attempt for lc unless one is running or (without
// force) the last one began less than retryInterval ago. l.mu must be
// held.
func (l *p2pLink) start(lc *linkConn, force bool) {
	if l.running != nil || l.closed {
		return
	}
	if !force && !l.last.IsZero() && time.Since(l.last) < l.v.cfg.RetryInterval.Duration {
		return
	}
	ch := make(chan struct{})
	l.running, l.last = ch, time.Now()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		err := l.attempt(lc)
		l.mu.Lock()
		l.running = nil
		l.lastErr = err
		l.mu.Unlock()
		close(ch)
	}()
}

// openStream opens a connection to the owner's service over the link
// for app, the application's connection, whose addresses start the
// stream (a StreamHead).
func (l *p2pLink) openStream(app net.Conn) (net.Conn, error) {
	head := protocol.EncodeStreamHead(app.RemoteAddr().String(), app.LocalAddr().String())
	for try := 0; ; try++ {
		lc, err := l.get()
		if err != nil {
			return nil, err
		}
		st, err := lc.sess.Open()
		if err == nil {
			if _, err = st.Write(head); err != nil {
				st.Close()
			}
		}
		if err == nil || try == 1 {
			return st, err
		}
		// The link ended under us: once more, on a new one.
	}
}

// retryLoop punches again every retryInterval while the link has no
// direct carrier and is in use.
func (l *p2pLink) retryLoop(ctx context.Context) {
	defer l.v.wg.Done()
	t := time.NewTicker(l.v.cfg.RetryInterval.Duration)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.ctx.Done():
			return
		case <-t.C:
			l.mu.Lock()
			lc := l.cur
			if lc != nil && !lc.link.Has(xtcp.CarrierUDP) && !lc.link.Has(xtcp.CarrierTCP) &&
				(time.Since(l.demand) < demandWindow || (lc.sess != nil && lc.sess.NumStreams() > 0)) {
				l.start(lc, false)
			}
			l.mu.Unlock()
		}
	}
}

// attachDirect gives lc the punched path and watches it: when it dies
// the link carries on over the relay, after is called (the socket is
// closed by then), and the next retry punches again.
func (l *p2pLink) attachDirect(lc *linkConn, kind xtcp.CarrierKind, c xtcp.Carrier, after func()) error {
	if err := lc.link.Attach(kind, c); err != nil {
		after()
		return err
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		<-c.Done()
		c.Close()
		after()
		l.mu.Lock()
		l.last = time.Time{} // the next retry tick punches again
		closed := l.closed
		l.mu.Unlock()
		if !closed && lc.link.Err() == nil {
			l.v.log.Warn("direct path lost; connections continue over the relay and the next retry punches again", "transport", kind, "cause", c.Err())
		}
	}()
	return nil
}

func (l *p2pLink) close() {
	l.mu.Lock()
	l.closed = true
	lc := l.cur
	l.mu.Unlock()
	l.cancel()
	if lc != nil {
		lc.close()
	}
	l.wg.Wait()
}
