package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

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
func (c *Client) serveVisitor(st net.Conn, rp *runProxy, sw *protocol.StartWork) {
	p := rp.cfg
	if !p.AllowsUser(c.cfg.User, sw.VisitorUser) { // the server's check, again
		c.logLimit.Log(context.Background(), c.log, slog.LevelWarn, sw.Visitor, "visitor refused", "proxy", p.Name, "visitor", sw.Visitor, "visitor_user", sw.VisitorUser, "error", ErrNotAllowed)
		st.Close()
		return
	}
	sc, local, err := visit.OwnerFrom(st, p.SecretKey, c.ownerIdentity(p, sw))
	if err != nil {
		c.logLimit.Log(context.Background(), c.log, slog.LevelWarn, sw.Visitor, "visitor refused", "proxy", p.Name, "visitor", sw.Visitor, "visitor_user", sw.VisitorUser, "error", fmt.Errorf("%w: %w", ErrVisitAuth, err))
		st.Close()
		return
	}
	if p.Type.IsP2P() { // the relay of a visitor's link
		c.serveLinkRelay(sc, rp, sw)
		return
	}
	// The visitor's local connection, sealed by the visitor, for the PROXY
	// protocol header; an older visitor sends none (the header then says
	// the address is unknown).
	src, dst := sw.SrcAddr, ""
	if s, d, ok := strings.Cut(local, " "); ok {
		src, dst = s, d
	}
	c.serveLocal(sc, rp, src, dst)
}

// openRelay opens a relayed connection from a visitor to a secret proxy
// through the server and runs the visit handshake on it. The returned conn
// is sealed end to end with the owner.
func (c *Client) openRelay(v config.VisitorConfig) (*seal.Conn, error) {
	return c.openRelayFrom(v, "")
}

// openRelayFrom is openRelay for a local connection of the visitor: local
// is "srcAddr dstAddr" of that connection, sent sealed to the owner for its
// PROXY protocol header ("" for none).
func (c *Client) openRelayFrom(v config.VisitorConfig, local string) (*seal.Conn, error) {
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
	sc, err := visit.VisitorFrom(st, pre, v.SecretKey, c.visitorIdentity(v), local)
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
