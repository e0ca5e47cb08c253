package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hopproxy/hop/pkg/control"
	"github.com/hopproxy/hop/pkg/heartbeat"
	"github.com/hopproxy/hop/pkg/mux"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/xtcp/nat"
)

// clientKey is a client's identity on the server: its authenticated user
// and the client ID it logged in with. The session table is keyed by it.
type clientKey struct{ user, clientID string }

// String is user.clientID, or the client ID alone for the empty user.
func (k clientKey) String() string { return qualify(k.user, k.clientID) }

// qualify is frp's naming of a user's object on the server: user.name
// when the user is not empty. It is for logs and messages only: the
// tables key by (user, name) so "a.b"+"c" and "a"+"b.c" stay apart.
func qualify(user, name string) string {
	if user == "" {
		return name
	}
	return user + "." + name
}

// session is one logged-in client.
type session struct {
	srv      *Server
	user     string // authenticated at login: its token was proven
	clientID string
	identity ed25519.PublicKey // signed the login transcript
	id       string
	ms       *mux.Session
	ch       *control.Channel
	log      *slog.Logger
	ended    chan struct{} // closed after unregister

	// stopped are the proxies the client closed because it is stopping
	// (CloseProxy.shutdown), name → type, under mu: with those still
	// open, they are its offline proxies once the session ends.
	stopped map[string]string

	addr        string    // the client's address
	connectedAt time.Time // login

	hb *heartbeat.Monitor // set by run (under mu) before any message is handled

	// heartbeat.interval = "auto" (idleprobe.go): the key of the
	// client's idle probes, how many are open, the TLS connection whose
	// TCP keepalive follows the heartbeat.
	probeKey [protocol.ProbeKeySize]byte
	probes   atomic.Int32
	conn     net.Conn

	mu         sync.Mutex
	proxies    map[string]*proxy
	nat        string        // the NAT class the client last reported in a P2P message
	hbInterval time.Duration // the heartbeat interval accepted from an auto client; 0 before any
	hbLearned  time.Duration // the longest idle silence the client saw survive; 0 if none
}

// sessionInfo is what the API shows of a session besides its proxies.
type sessionInfo struct {
	addr, nat   string
	connectedAt time.Time
	rtt         time.Duration // last heartbeat RTT, 0 before the first
	proxies     []string      // sorted
	types       []string      // the type of each of proxies; set only for the history (lastProxies)
	// The heartbeat interval in force, and for an auto client the
	// longest idle silence it saw the path survive (0: none yet or not
	// auto).
	hbInterval, hbLearned time.Duration
}

func (ss *session) info() sessionInfo {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	in := sessionInfo{addr: ss.addr, nat: ss.nat, connectedAt: ss.connectedAt, hbLearned: ss.hbLearned}
	if ss.hb != nil {
		in.rtt = ss.hb.Stats().LastRTT
		in.hbInterval = ss.hb.Config().Interval
	}
	for name := range ss.proxies {
		in.proxies = append(in.proxies, name)
	}
	slices.Sort(in.proxies)
	return in
}

// lastProxies are the session's proxies as it ends, sorted, with their
// types: those still open and those the client closed as it stopped.
func (ss *session) lastProxies() (names, types []string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	all := make(map[string]string, len(ss.proxies)+len(ss.stopped))
	maps.Copy(all, ss.stopped)
	for name, p := range ss.proxies {
		all[name] = p.typ
	}
	names = slices.Sorted(maps.Keys(all))
	for _, name := range names {
		types = append(types, all[name])
	}
	return names, types
}

// noteNAT records the NAT class a P2P message of the client carried.
func (ss *session) noteNAT(class string) {
	if class == "" {
		return
	}
	ss.mu.Lock()
	ss.nat = nat.Known(class)
	ss.mu.Unlock()
}

func newSession(s *Server, hello *protocol.ClientHello, id string, ms *mux.Session, ctrl net.Conn, log *slog.Logger) *session {
	return &session{srv: s, user: hello.User, clientID: hello.ClientID, identity: ed25519.PublicKey(hello.IdentityKey),
		id: id, ms: ms, ch: control.New(ctrl), log: log, ended: make(chan struct{}), proxies: map[string]*proxy{},
		addr: ms.RemoteAddr().String(), connectedAt: time.Now()}
}

// monitor is the session's heartbeat, nil before run starts it; for
// readers on other goroutines than the session's own.
func (ss *session) monitor() *heartbeat.Monitor {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.hb
}

func (ss *session) key() clientKey { return clientKey{ss.user, ss.clientID} }

// run serves the control stream until the session ends and returns why.
func (ss *session) run() error {
	hb := heartbeat.Start(ss.srv.heartbeatConfig(), ss.ch.TrySend, ss.ms.LastRead)
	ss.mu.Lock()
	ss.hb = hb
	ss.mu.Unlock()
	// A heartbeat timeout closes the session from the Monitor's timer:
	// no goroutine per session waits for it.
	hb.OnTimeout(func(err error) { ss.ms.CloseWithCause(err) })
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // streams the client opens: relayed visitor connections
		defer wg.Done()
		for {
			st, err := ss.ms.Accept()
			if err != nil {
				return
			}
			ss.srv.connWG.Add(1)
			go ss.srv.serveVisit(ss, st)
		}
	}()
	for {
		msg, err := ss.ch.Recv()
		if err != nil {
			ss.ms.CloseWithCause(controlError(err))
			break
		}
		if hb.Handle(msg) {
			continue
		}
		hb.Heard()
		if err := ss.handle(msg); err != nil {
			ss.ms.CloseWithCause(err)
			break
		}
	}
	hb.Close()
	<-ss.ms.Done()
	wg.Wait()
	ss.ch.Close()
	ss.ms.Close()
	return ss.ms.Err()
}

// controlError names why reading the control stream stopped. A malformed
// frame is a protocol violation: the peer is disconnected with that reason.
func controlError(err error) error {
	for _, e := range []error{protocol.ErrFrameTooLarge, protocol.ErrMalformed, protocol.ErrUnknownType, protocol.ErrVersion} {
		if errors.Is(err, e) {
			return fmt.Errorf("protocol violation on the control stream: %w", err)
		}
	}
	return fmt.Errorf("control stream ended: %w", err)
}

func (ss *session) handle(msg protocol.Message) error {
	switch m := msg.(type) {
	case *protocol.NewProxy:
		resp := ss.srv.openProxy(ss, m)
		return ss.ch.Send(context.Background(), resp)
	case *protocol.P2POffer:
		ss.noteNAT(m.NAT)
		ss.srv.p2pOffer(ss, m)
		return nil
	case *protocol.P2PAnswer:
		ss.noteNAT(m.NAT)
		ss.srv.p2pAnswer(ss, m)
		return nil
	case *protocol.P2PResult:
		ss.noteNAT(m.NAT)
		ss.srv.p2pResult(ss, m)
		return nil
	case *protocol.P2PAuth:
		ss.srv.p2pAuth(ss, m)
		return nil
	case *protocol.HeartbeatUpdate:
		iv := ss.heartbeatUpdate(m)
		return ss.ch.Send(context.Background(), &protocol.HeartbeatUpdate{IntervalMs: iv.Milliseconds()})
	case *protocol.CloseProxy:
		ss.mu.Lock()
		p := ss.proxies[m.Name]
		ss.mu.Unlock()
		if p != nil {
			ss.srv.closeProxy(p)
			ss.log.Info("proxy closed by client", "proxy", p.fullName(), "client_stopping", m.Shutdown)
			if m.Shutdown {
				ss.mu.Lock()
				if ss.stopped == nil {
					ss.stopped = map[string]string{}
				}
				ss.stopped[p.name] = p.typ
				ss.mu.Unlock()
			}
		}
		return nil
	default:
		return fmt.Errorf("protocol violation: a client may not send %v", msg.Type())
	}
}

// closeProxies releases every port of the session and waits for the
// proxies' goroutines.
func (ss *session) closeProxies() {
	ss.mu.Lock()
	ps := make([]*proxy, 0, len(ss.proxies))
	for _, p := range ss.proxies {
		ps = append(ps, p)
	}
	ss.mu.Unlock()
	for _, p := range ps {
		ss.srv.closeProxy(p)
	}
}

// openStream opens the stream of one user connection and announces it.
// proxyName is the client's own name of the proxy; src is the user's
// address and dst the server's address the user reached.
func (ss *session) openStream(proxyName, src, dst string) (net.Conn, error) {
	return ss.openStreamFor(&protocol.StartWork{Proxy: proxyName, SrcAddr: src, DstAddr: dst})
}

// openStreamFor opens a stream to the client and writes sw on it.
func (ss *session) openStreamFor(sw *protocol.StartWork) (net.Conn, error) {
	st, err := ss.ms.Open()
	if err != nil {
		return nil, err
	}
	st.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := protocol.WriteMsg(st, sw); err != nil {
		st.Close()
		return nil, err
	}
	st.SetWriteDeadline(time.Time{})
	return st, nil
}
