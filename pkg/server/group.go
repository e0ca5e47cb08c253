package server

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"

	"github.com/hopproxy/hop/pkg/acceptloop"
	"github.com/hopproxy/hop/pkg/protocol"
)

// A load-balancing group (frp's loadBalancer.group and groupKey) is tcp
// proxies, of one client or several, that share one public port: the
// group owns the listener, and spreads new connections across its members
// round robin from a random start. The first member opens the port; a
// member whose session ends, or whose client withdraws it (CloseProxy,
// as a failing health check does), leaves; the port closes when the last
// leaves.
type tcpGroup struct {
	name string
	key  string
	port int
	ln   net.Listener
	log  *slog.Logger
	wg   sync.WaitGroup // the accept loop

	mu      sync.Mutex
	members []*proxy
	next    int
}

// pick returns the member for a new connection, nil when none is left.
func (g *tcpGroup) pick() *proxy {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.members) == 0 {
		return nil
	}
	p := g.members[g.next%len(g.members)]
	g.next = (g.next + 1) % len(g.members)
	return p
}

// joinGroup adds p to its group m.Group, opening the group's port when p
// is the first member. Callers hold s.mu. A nil result means p joined.
func (s *Server) joinGroup(p *proxy, m *protocol.NewProxy, open func() *protocol.NewProxyResp) *protocol.NewProxyResp {
	if g := s.groups[m.Group]; g != nil {
		if subtle.ConstantTimeCompare([]byte(g.key), []byte(m.GroupKey)) != 1 {
			return refuse(m.Name, protocol.CodeGroupKey, "loadBalancer.groupKey does not match the key of group %q; write the same groupKey in every member of the group", m.Group)
		}
		if m.RemotePort != g.port {
			return refuse(m.Name, protocol.CodeBadRequest, "group %q is on remotePort %d; every member of a group sets the same remotePort", m.Group, g.port)
		}
		g.mu.Lock()
		g.members = append(g.members, p)
		n := len(g.members)
		g.mu.Unlock()
		p.group, p.port = g, g.port
		g.log.Info("proxy joined load-balancing group", "proxy", p.fullName(), "members", n)
		return nil
	}
	if r := open(); r != nil {
		return r
	}
	g := &tcpGroup{name: m.Group, key: m.GroupKey, port: p.port, ln: p.ln, members: []*proxy{p}, next: rand.IntN(1 << 16)}
	g.log = s.log.With("group", g.name, "port", g.port)
	p.ln, p.group = nil, g
	s.groups[g.name] = g
	g.wg.Add(1)
	go s.serveGroup(g)
	g.log.Info("load-balancing group opened", "proxy", p.fullName())
	return nil
}

// leaveGroup takes p out of its group, closing the group's port when p
// was the last member.
func (s *Server) leaveGroup(p *proxy) {
	g := p.group
	s.mu.Lock()
	g.mu.Lock()
	for i, q := range g.members {
		if q == p {
			g.members = append(g.members[:i], g.members[i+1:]...)
			break
		}
	}
	n := len(g.members)
	g.mu.Unlock()
	last := n == 0 && s.groups[g.name] == g
	if last {
		delete(s.groups, g.name)
	}
	s.mu.Unlock()
	g.log.Info("proxy left load-balancing group", "proxy", p.fullName(), "members", n)
	if n == 0 {
		g.ln.Close()
		g.wg.Wait()
		g.log.Info("load-balancing group closed: no member left")
	}
}

// serveGroup accepts the connections of a group's port and gives each to
// the next member.
func (s *Server) serveGroup(g *tcpGroup) {
	defer g.wg.Done()
	acceptloop.Serve(context.Background(), g.ln, func(c net.Conn) {
		p := g.pick()
		if p == nil {
			c.Close()
			return
		}
		s.serveUserConn(p, c)
	}, acceptloop.Options{Log: g.log})
}
