package client

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/seal"
	"github.com/hopproxy/hop/pkg/visit"
)

// A visitor of a secret proxy and its owner meet end to end through the
// server's relay: the visit handshake (pkg/visit, CPace keyed by the
// proxy's secretKey) proves each to the other and keys the sealed records
// that carry the connection, so the server never sees the secret nor the
// bytes.

// ownerIdentity is the identity of a visit as the owner of p sees it: the
// visitor's user and client ID as the server vouches for them in sw.
func (c *Client) ownerIdentity(p config.ProxyConfig, sw *protocol.StartWork) visit.Identity {
	return visitIdentity(p, sw.VisitorUser, sw.Visitor, c.cfg.User)
}

func visitIdentity(p config.ProxyConfig, visitorUser, visitorID, ownerUser string) visit.Identity {
	return visit.Identity{Proxy: p.Name, ProxyType: string(p.Type), VisitorUser: visitorUser, VisitorID: visitorID, OwnerUser: ownerUser}
}

// visitorIdentity is the identity of a visit of v as the visitor sees it.
func (c *Client) visitorIdentity(v config.VisitorConfig) visit.Identity {
	return visit.Identity{Proxy: v.ServerName, ProxyType: string(v.Type), VisitorUser: c.cfg.User, VisitorID: c.id, OwnerUser: v.OwnerUser(c.cfg.User)}
}

// serveVisitor serves a visitor's connection the server relays to the
// owner's secret proxy p: the visit handshake, then the sealed connection
// to the local service. A visitor that cannot confirm gets nothing.
func (c *Client) serveVisitor(st net.Conn, p config.ProxyConfig, sw *protocol.StartWork) {
	sc, err := visit.Owner(st, p.SecretKey, c.ownerIdentity(p, sw))
	if err != nil {
		if c.due("visitor/" + p.Name + "/" + sw.Visitor) {
			c.log.Warn("visitor refused", "proxy", p.Name, "visitor", sw.Visitor, "visitor_user", sw.VisitorUser, "error", fmt.Errorf("%w: %w", ErrVisitAuth, err))
		}
		st.Close()
		return
	}
	c.serveLocal(sc, p, sw.SrcAddr)
}

// openRelay opens a relayed connection from a visitor to a secret proxy
// through the server and runs the visit handshake on it. The returned conn
// is sealed end to end with the owner.
func (c *Client) openRelay(v config.VisitorConfig) (*seal.Conn, error) {
	l, err := c.current()
	if err != nil {
		return nil, err
	}
	st, err := l.ms.Open()
	if err != nil {
		return nil, fmt.Errorf("open relay stream: %w", err)
	}
	pre, err := protocol.Encode(&protocol.Visit{Proxy: v.ServerName, ProxyType: string(v.Type), ServerUser: v.ServerUser})
	if err != nil {
		st.Close()
		return nil, err
	}
	sc, err := visit.Visitor(st, pre, v.SecretKey, c.visitorIdentity(v))
	if err != nil {
		st.Close()
		var pe *protocol.Error
		if errors.As(err, &pe) || errors.Is(err, visit.ErrOwnerUnconfirmed) {
			c.visitRefused(v, err)
		}
		return nil, err
	}
	return sc, nil
}

// sealEnded logs, rate-limited, a relayed connection that ended because its
// sealed records did not check out: the relay (hops, or whoever is between
// it and us) altered, injected or cut the connection's data. A clean end or
// a plain close is not logged.
func (c *Client) sealEnded(sc *seal.Conn, log *slog.Logger, side, name string) {
	err := sc.Err()
	if err == nil || errors.Is(err, net.ErrClosed) || !(errors.Is(err, seal.ErrAuth) || errors.Is(err, seal.ErrRecord) || errors.Is(err, seal.ErrTooLarge)) {
		return
	}
	if c.due("seal/" + side + "/" + name) {
		log.Warn("relayed connection ended: its data was altered in transit", "error", err)
	}
}

// visitRefused logs why the server or the owner refused a visitor, or why
// the visitor refused the owner, at most once per warnEvery per visitor and
// reason.
func (c *Client) visitRefused(v config.VisitorConfig, err error) {
	if c.due("visit/" + v.Name + "/" + err.Error()) {
		c.log.Warn("visit refused", "visitor", v.Name, "server_name", v.ServerName, "error", err)
	}
}

// Recently used P2P session IDs, so that a reused one (a malicious server
// or an impostor replaying an attempt) is refused.
const (
	maxSeenSessions = 4096
	seenSessionTTL  = 10 * time.Minute
)

// replayCache is the name client.Client's field has for the P2P guard.
type replayCache = p2pGuard

// p2pGuard is a client's defence against abusive P2P offers: the recent
// session IDs (a bounded set) and the owner's count of offers in flight per
// proxy and per visitor.
type p2pGuard struct {
	mu         sync.Mutex
	seen       map[string]time.Time
	order      []string // seen's keys, oldest first
	perProxy   map[string]int
	perVisitor map[string]int
}

// fresh records a session ID and reports whether it was not used before.
func (g *p2pGuard) fresh(id string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen == nil {
		g.seen = map[string]time.Time{}
	}
	for len(g.order) > 0 && (len(g.order) >= maxSeenSessions || now.Sub(g.seen[g.order[0]]) > seenSessionTTL) {
		delete(g.seen, g.order[0])
		g.order = g.order[1:]
	}
	if _, dup := g.seen[id]; dup {
		return false
	}
	g.seen[id] = now
	g.order = append(g.order, id)
	return true
}

// Owner-side caps of P2P offers in flight (the server has its own).
const (
	maxOffersPerProxy   = 8
	maxOffersPerVisitor = 2
)

// admit counts an offer for proxy from visitor if both are under their
// caps; release undoes it.
func (g *p2pGuard) admit(proxy, visitor string) (release func(), err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.perProxy == nil {
		g.perProxy, g.perVisitor = map[string]int{}, map[string]int{}
	}
	switch {
	case g.perProxy[proxy] >= maxOffersPerProxy:
		return nil, fmt.Errorf("%w: %d P2P offers for proxy %q in flight (at most %d)", errTooManyOffers, g.perProxy[proxy], proxy, maxOffersPerProxy)
	case g.perVisitor[visitor] >= maxOffersPerVisitor:
		return nil, fmt.Errorf("%w: %d P2P offers from visitor %q in flight (at most %d)", errTooManyOffers, g.perVisitor[visitor], visitor, maxOffersPerVisitor)
	}
	g.perProxy[proxy]++
	g.perVisitor[visitor]++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.perProxy[proxy]--; g.perProxy[proxy] <= 0 {
				delete(g.perProxy, proxy)
			}
			if g.perVisitor[visitor]--; g.perVisitor[visitor] <= 0 {
				delete(g.perVisitor, visitor)
			}
		})
	}, nil
}
