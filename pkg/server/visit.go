package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hopproxy/hop/pkg/bridge"
	"github.com/hopproxy/hop/pkg/bwlimit"
	"github.com/hopproxy/hop/pkg/protocol"
)

// visitTimeout bounds reading the Visit frame of a new visitor stream.
const visitTimeout = 10 * time.Second

// lookupSecret finds the secret proxy a visitor asks for: proxy name of
// user serverUser ("" = the visitor's own user), applying the owner's
// allowUsers to the visitor's authenticated user. typ is the visitor's
// type, which must match. A visitor of another user learns no more than
// that there is no proxy it may visit under that name.
func (s *Server) lookupSecret(visitor *session, serverUser, name, typ string) (*proxy, *protocol.Error) {
	owner := serverUser
	if owner == "" {
		owner = visitor.user
	}
	s.mu.Lock()
	p := s.proxies[proxyKey{owner, name}]
	s.mu.Unlock()
	full := qualify(owner, name)
	if owner != visitor.user && (p == nil || !isSecret(p.typ) || !p.allows(visitor.user)) {
		return nil, &protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("user %q has no secret proxy %q that user %q may visit; check the visitor's serverUser and serverName, and the proxy's allowUsers", owner, name, visitor.user)}
	}
	switch {
	case p == nil:
		return nil, &protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("no proxy named %q is registered on the server; check the visitor's serverName (and serverUser) and that the owning hopc is connected", full)}
	case !isSecret(p.typ):
		return nil, &protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("proxy %q is a %s proxy with a public port, not a secret proxy", full, p.typ)}
	case p.typ != typ:
		return nil, &protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("proxy %q is of type %s but the visitor is %s; use the same type on both sides", full, p.typ, typ)}
	case !p.allows(visitor.user):
		return nil, &protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("user %q is not in the allowUsers of proxy %q", visitor.user, full)}
	}
	return p, nil
}

// serveVisit relays one stream a visitor opened: it reads the Visit frame,
// opens a stream to the proxy's owner and joins the two. The secret is
// checked end to end by the visit handshake (pkg/visit), never by the server.
func (s *Server) serveVisit(ss *session, st net.Conn) {
	defer s.connWG.Done()
	s.users.Add(st)
	defer s.users.Remove(st)
	st.SetReadDeadline(time.Now().Add(visitTimeout))
	v, err := protocol.ReadAs[*protocol.Visit](st)
	if err != nil {
		var pe *protocol.Error
		if !errors.As(err, &pe) {
			s.logLimit.Log(context.Background(), ss.log, slog.LevelWarn, ss.key().String(), "bad visitor stream", "error", err)
		}
		st.Close()
		return
	}
	st.SetReadDeadline(time.Time{})
	p, perr := s.lookupSecret(ss, v.ServerUser, v.Proxy, v.ProxyType)
	if perr != nil {
		s.logLimit.Log(context.Background(), ss.log, slog.LevelInfo, ss.key().String(), "visit refused", "proxy", v.Proxy, "reason", perr.Message)
		protocol.WriteMsg(st, perr)
		st.Close()
		return
	}
	out, err := p.owner.openStreamFor(&protocol.StartWork{Proxy: p.name, SrcAddr: "visitor " + ss.key().String(), Visitor: ss.clientID, VisitorUser: ss.user})
	if err != nil {
		protocol.WriteMsg(st, &protocol.Error{Code: protocol.CodeBadRequest, Message: "the owner of proxy " + p.fullName() + " cannot be reached: " + err.Error()})
		st.Close()
		return
	}
	p.conns.Opened()
	defer p.conns.Closed()
	up, down := bridge.JoinCounting(p.limit.Conn(st, bwlimit.Out), p.limit.Conn(out, bwlimit.In), &p.conns.In, &p.conns.Out)
	p.log.Debug("visitor connection closed", "visitor", ss.key().String(), "bytes_in", up, "bytes_out", down)
}
