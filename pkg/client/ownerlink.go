package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/seal"
	"github.com/hopproxy/hop/pkg/visit"
	"github.com/hopproxy/hop/pkg/xtcp"
)

// The owner's side of relay-first links (see link.go): a link per
// visitor's link ID, made when the visitor's relay or a punched path first
// names it, serving the visitor's streams (xtcp) or datagrams (xudp) to
// the local service until it has had no carrier for ownerLinkLinger.

// Caps of an owner's links.
const (
	maxLinksPerVisitor = 8   // a visitor has one link per visitor entry, plus ones lingering after its restart
	maxLinksPerProxy   = 256 // across visitors
)

var errTooManyLinks = errors.New("too many P2P links")

// ownerLink is one link an owner serves.
type ownerLink struct {
	key, visitor, proxy string
	rp                  *runProxy
	link                *xtcp.Link
	sess                *xtcp.Session // xtcp

	// The visitor's LinkHello on the relay says whether its streams start
	// with a StreamHead; a link made from a P2P offer can be up before
	// the hello arrives, so its streams wait for hello (closed once).
	hello     chan struct{}
	helloOnce sync.Once
	heads     atomic.Bool
}

// sawHello records the visitor's hello.
func (ol *ownerLink) sawHello(h protocol.LinkHello) {
	ol.helloOnce.Do(func() {
		ol.heads.Store(h.Heads)
		close(ol.hello)
	})
}

// streamAddrs returns the addresses of the visitor's application
// connection that st carries: read from its StreamHead when the link has
// them, else a description of the link.
func (ol *ownerLink) streamAddrs(st net.Conn) (src, dst string, err error) {
	t := time.NewTimer(visit.Timeout)
	defer t.Stop()
	select {
	case <-ol.hello:
	case <-ol.link.Done():
		return "", "", net.ErrClosed
	case <-t.C:
		return "", "", errors.New("no link hello from the visitor on the relay")
	}
	if !ol.heads.Load() {
		return "visitor " + ol.visitor + " (link)", "", nil
	}
	st.SetReadDeadline(time.Now().Add(visit.Timeout))
	src, dst, err = protocol.ReadStreamHead(st)
	st.SetReadDeadline(time.Time{})
	return src, dst, err
}

func (ol *ownerLink) Close() error {
	if ol.sess != nil {
		return ol.sess.Close()
	}
	return ol.link.Close()
}

// ownerLinks are an owner's links by key.
type ownerLinks struct {
	mu sync.Mutex
	m  map[string]*ownerLink
}

func linkKey(proxy, visitorUser, visitorID string, id protocol.LinkID) string {
	return strconv.Quote(proxy) + " " + strconv.Quote(visitorUser) + " " + strconv.Quote(visitorID) + " " + id.String()
}

// ownerLink returns the link of proxy p that the visitor (as the server
// vouches for it) named id, making it and starting to serve it if create.
// It returns nil, nil for an unknown link without create.
// A proxy changed by a reload starts with no links: its links' keys
// include the run's generation.
func (c *Client) ownerLink(rp *runProxy, visitorUser, visitorID string, id protocol.LinkID, create bool) (*ownerLink, error) {
	p := rp.cfg
	key := strconv.FormatUint(rp.gen, 10) + " " + linkKey(p.Name, visitorUser, visitorID, id)
	visitor := strconv.Quote(visitorUser) + " " + strconv.Quote(visitorID)
	c.links.mu.Lock()
	defer c.links.mu.Unlock()
	if rp.retired.Load() { // retireProxy closes the links it finds after setting it
		return nil, errProxyStopped
	}
	if ol := c.links.m[key]; ol != nil {
		select {
		case <-ol.link.Done():
		default:
			return ol, nil
		}
	}
	if !create {
		return nil, nil
	}
	perVisitor, perProxy := 0, 0
	for _, ol := range c.links.m {
		if ol.proxy == p.Name {
			perProxy++
			if ol.visitor == visitor {
				perVisitor++
			}
		}
	}
	if perVisitor >= maxLinksPerVisitor || perProxy >= maxLinksPerProxy {
		return nil, fmt.Errorf("%w: %d of this visitor's and %d of proxy %q's (at most %d and %d)",
			errTooManyLinks, perVisitor, perProxy, p.Name, maxLinksPerVisitor, maxLinksPerProxy)
	}
	log := c.log.With("proxy", p.Name, "type", p.Type, "visitor", visitorID, "visitor_user", visitorUser, "link", id.String()[:8])
	link, err := xtcp.NewLink(xtcp.LinkConfig{Linger: ownerLinkLinger, Logger: log})
	if err != nil {
		return nil, err
	}
	ol := &ownerLink{key: key, visitor: visitor, proxy: p.Name, rp: rp, link: link, hello: make(chan struct{})}
	if p.Type == config.ProxyXTCP {
		s, err := xtcp.NewLinkSession(link, xtcp.RoleOwner, linkConv(id), xtcp.SessionConfig{Logger: log})
		if err != nil {
			link.Close()
			return nil, err
		}
		ol.sess = s
	}
	if c.links.m == nil {
		c.links.m = map[string]*ownerLink{}
	}
	c.links.m[key] = ol
	c.closers.add(ol)
	c.connWG.Add(1)
	go c.serveLink(ol, rp, log)
	log.Info("P2P link from visitor started")
	return ol, nil
}

// serveLink carries a link's streams or datagrams to the local service
// until the link ends.
func (c *Client) serveLink(ol *ownerLink, rp *runProxy, log *slog.Logger) {
	p := rp.cfg
	defer c.connWG.Done()
	start := time.Now()
	if ol.sess != nil {
		for {
			st, err := ol.sess.Accept()
			if err != nil {
				break
			}
			c.connWG.Add(1)
			go func() {
				defer c.connWG.Done()
				src, dst, err := ol.streamAddrs(st)
				if err != nil {
					log.Debug("P2P link stream dropped", "error", err)
					st.Close()
					return
				}
				c.serveLocal(st, rp, src, dst)
			}()
		}
	} else {
		c.serveDatagramPath(ol.link, p, net.JoinHostPort(p.LocalIP, strconv.Itoa(p.LocalPort)))
	}
	ol.Close()
	c.links.mu.Lock()
	if c.links.m[ol.key] == ol {
		delete(c.links.m, ol.key)
	}
	c.links.mu.Unlock()
	c.closers.remove(ol)
	log.Info("P2P link from visitor ended", "cause", ol.link.Err(), "lived", time.Since(start).Round(time.Second))
}

// serveLinkRelay takes a visitor's relay of an xtcp or xudp proxy after
// the visit handshake: its first record names the link, which gets the
// relay as its carrier.
func (c *Client) serveLinkRelay(sc *seal.Conn, rp *runProxy, sw *protocol.StartWork) {
	p := rp.cfg
	log := c.log.With("proxy", p.Name, "type", p.Type, "visitor", sw.Visitor, "visitor_user", sw.VisitorUser)
	sc.SetReadDeadline(time.Now().Add(visit.Timeout))
	buf := make([]byte, 64)
	n, err := sc.ReadDatagram(buf)
	var h protocol.LinkHello
	if err == nil {
		h, err = protocol.DecodeLinkHello(buf[:n])
	}
	sc.SetReadDeadline(time.Time{})
	if err != nil {
		c.logLimit.Log(context.Background(), log, slog.LevelWarn, sw.Visitor, "visitor's relay refused: no link hello", "error", err)
		sc.Close()
		return
	}
	ol, err := c.ownerLink(rp, sw.VisitorUser, sw.Visitor, h.ID, !h.Resume)
	if err != nil {
		log.Warn("visitor's relay refused", "error", err)
		sc.Close()
		return
	}
	if ol != nil {
		ol.sawHello(h)
	}
	if ol == nil {
		log.Info("visitor resumed a link this client does not know (it restarted); the visitor makes a new one", "link", h.ID.String()[:8])
		sc.WriteDatagram(protocol.EncodeLinkStatus(protocol.LinkUnknown))
		sc.Close()
		return
	}
	if err := sc.WriteDatagram(protocol.EncodeLinkStatus(protocol.LinkOK)); err != nil {
		sc.Close()
		return
	}
	ol.link.Attach(xtcp.CarrierRelay, xtcp.NewStreamCarrier(sc, 0))
}
