package client

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/backoff"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/protocol"
)

// sender is what the registrar needs of the control channel.
type sender interface {
	Send(ctx context.Context, m protocol.Message) error
}

// permanentProxyCode reports whether a NewProxyResp refusal cannot pass by
// itself: the request or the server's policy has to change. Every other
// code (port_in_use, proxy_exists held by a dying session, a temporary
// server error, codes this build does not know) is retried.
func permanentProxyCode(code string) bool {
	switch code {
	case protocol.CodePortNotAllowed, protocol.CodeBadRequest, protocol.CodeTooManyProxies, protocol.CodeVhostDisabled, protocol.CodeGroupKey:
		return true
	}
	return false
}

// registrar registers the proxies of one session and retries, per proxy
// with its own backoff (jitter, capped at reconnect.maxDelay), those the
// server refused for a passing reason. It lives as long as the session.
// A reload adds and removes proxies (add, remove); sendMu keeps the
// NewProxy and CloseProxy of a name in the order they were decided.
type registrar struct {
	ch      sender
	log     *slog.Logger
	min     time.Duration
	max     time.Duration
	onReady func(config.ProxyConfig, *protocol.NewProxyResp) // logs a started proxy
	down    func(name string) bool                           // withdrawn by its health check; nil: none is
	// port, when set, is the remote port to ask for a proxy configured
	// with remotePort = 0 (the one another node opened, so that every
	// node has the same; 0 before any has one), and samePort is told the
	// port a node opened for such a proxy: false means another node has
	// another, and the proxy moves to that one (client.go: ports).
	port     func(name string) int
	samePort func(name string, opened int) (want int, ok bool)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // pending retries

	sendMu sync.Mutex // held while sending NewProxy or CloseProxy

	mu      sync.Mutex
	order   []string // proxy names, in config order
	started bool     // start ran: add sends at once
	closed  bool
	state   map[string]*regState // by proxy name
	gone    map[string]bool      // removed by a reload: late answers for them are dropped
}

type regState struct {
	cfg   config.ProxyConfig
	bo    backoff.Backoff
	timer *time.Timer // pending retry, nil if none
	up    bool        // the server accepted it
	// The server's last refusal: its reason, and when the retry is due
	// (zero for a refusal that is not retried).
	err    string
	next   time.Time
	remote int // the remote port the server opened, once up
	// domains are the host names the server routes to an http or https
	// proxy, once up.
	domains []string
}

func newRegistrar(ch sender, log *slog.Logger, proxies []config.ProxyConfig, min, max time.Duration, onReady func(config.ProxyConfig, *protocol.NewProxyResp)) *registrar {
	ctx, cancel := context.WithCancel(context.Background())
	r := &registrar{ch: ch, log: log, min: min, max: max, onReady: onReady, ctx: ctx, cancel: cancel, state: map[string]*regState{}}
	for _, p := range proxies {
		r.order = append(r.order, p.Name)
		r.state[p.Name] = &regState{cfg: p, bo: backoff.Backoff{Min: min, Max: max}}
	}
	return r
}

// newMsg is the NewProxy for p, with the remote port the other nodes
// opened when p lets the server choose.
func (r *registrar) newMsg(p config.ProxyConfig) *protocol.NewProxy {
	m := newProxyMsg(p)
	if p.RemotePort == 0 && r.port != nil {
		m.RemotePort = r.port(p.Name)
	}
	return m
}

func newProxyMsg(p config.ProxyConfig) *protocol.NewProxy {
	m := &protocol.NewProxy{Name: p.Name, ProxyType: string(p.Type), RemotePort: p.RemotePort, AllowUsers: p.AllowUsers}
	m.Group, m.GroupKey = p.LoadBalancer.Group, p.LoadBalancer.GroupKey
	if p.Transport.LimitMode() == config.BandwidthLimitServer {
		m.BandwidthLimit = p.Transport.BandwidthBytes()
	}
	if p.Type == config.ProxyUDP {
		m.IdleTimeoutMs = p.IdleTimeout.Milliseconds()
	}
	if p.Type.IsVhost() { // --- vhost
		m.CustomDomains, m.Subdomain, m.Locations = p.CustomDomains, p.Subdomain, p.Locations
		m.HTTPUser, m.HTTPPassword, m.RouteByHTTPUser, m.HostHeaderRewrite = p.HTTPUser, p.HTTPPassword, p.RouteByHTTPUser, p.HostHeaderRewrite
		m.RequestHeaders, m.ResponseHeaders = p.RequestHeaders.Set, p.ResponseHeaders.Set
		m.ProxyProtocol = p.Type == config.ProxyHTTP && p.Transport.ProxyProtocolVersion != ""
		m.Multiplexer = p.Multiplexer // --- tcpmux
	}
	return m
}

// start sends a NewProxy for every proxy, in config order.
func (r *registrar) start(ctx context.Context) error {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	r.mu.Lock()
	r.started = true
	ps := make([]config.ProxyConfig, len(r.order))
	for i, n := range r.order {
		ps[i] = r.state[n].cfg
	}
	r.mu.Unlock()
	for _, p := range ps {
		if r.down != nil && r.down(p.Name) {
			r.withdrawnState(p.Name)
			continue
		}
		if err := r.ch.Send(ctx, r.newMsg(p)); err != nil {
			return fmt.Errorf("register proxies: %w", err)
		}
	}
	return nil
}

// add registers a proxy a reload added (at once once start ran, else with
// the others).
func (r *registrar) add(p config.ProxyConfig) {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	r.mu.Lock()
	if r.closed || r.state[p.Name] != nil {
		r.mu.Unlock()
		return
	}
	r.order = append(r.order, p.Name)
	r.state[p.Name] = &regState{cfg: p, bo: backoff.Backoff{Min: r.min, Max: r.max}}
	delete(r.gone, p.Name)
	send := r.started
	r.mu.Unlock()
	if send {
		r.send(r.newMsg(p))
	}
}

// remove forgets a proxy a reload removed, cancels its pending retry and
// asks the server to release it.
func (r *registrar) remove(name string) {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	r.mu.Lock()
	st := r.state[name]
	if st == nil || r.closed {
		r.mu.Unlock()
		return
	}
	delete(r.state, name)
	if r.gone == nil {
		r.gone = map[string]bool{}
	}
	r.gone[name] = true
	if i := slices.Index(r.order, name); i >= 0 {
		r.order = slices.Delete(r.order, i, i+1)
	}
	if st.timer != nil && st.timer.Stop() {
		st.timer = nil
		r.wg.Done()
	}
	send := r.started
	r.mu.Unlock()
	if send {
		r.send(&protocol.CloseProxy{Name: name})
	}
}

// withdrawnMsg is the state shown for a proxy its health check withdrew.
const withdrawnMsg = "withdrawn: its health check failed; registered again when a check passes"

// withdrawnState records that the named proxy is withdrawn.
func (r *registrar) withdrawnState(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st := r.state[name]; st != nil {
		st.up, st.err, st.next, st.remote = false, withdrawnMsg, time.Time{}, 0
		if st.timer != nil && st.timer.Stop() {
			st.timer = nil
			r.wg.Done()
		}
	}
}

// withdraw asks the server to release a proxy whose health check failed;
// it stays in the registrar, to be restored.
func (r *registrar) withdraw(name string) {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	r.mu.Lock()
	st, send := r.state[name], r.started && !r.closed
	r.mu.Unlock()
	if st == nil {
		return
	}
	r.withdrawnState(name)
	if send {
		r.send(&protocol.CloseProxy{Name: name})
	}
}

// restore registers again a proxy withdrawn by its health check.
func (r *registrar) restore(name string) {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	r.mu.Lock()
	st, send := r.state[name], r.started && !r.closed
	if st != nil {
		st.err = ""
	}
	r.mu.Unlock()
	if st != nil && send {
		r.send(r.newMsg(st.cfg))
	}
}

// send sends m on the session's control stream; a failure means the
// session is ending, and the next one registers what the registry holds.
func (r *registrar) send(m protocol.Message) {
	ctx, cancel := context.WithTimeout(r.ctx, sendTimeout)
	defer cancel()
	if err := r.ch.Send(ctx, m); err != nil {
		r.log.Debug("not sent: the session is ending", "message", m.Type(), "error", err)
	}
}

// result handles the server's answer for one proxy. It reports false for
// an answer about a proxy this client does not have (nor had until a
// reload removed it).
func (r *registrar) result(m *protocol.NewProxyResp) bool {
	down := r.down != nil && r.down(m.Name) // before mu: it takes the registry's lock
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.state[m.Name]
	if !ok {
		return r.gone[m.Name]
	}
	if r.closed {
		return true
	}
	if m.Error == "" && down { // accepted just before the health check withdrew it
		st.up, st.err, st.next, st.remote = false, withdrawnMsg, time.Time{}, 0
		return true
	}
	if m.Error == "" && st.cfg.RemotePort == 0 && r.samePort != nil && m.RemotePort != 0 {
		if want, ok := r.samePort(m.Name, m.RemotePort); !ok {
			// Another node opened another port first: this one moves to
			// it, so that every node serves the proxy on one port.
			st.up, st.err, st.next, st.remote = false, fmt.Sprintf("the server opened port %d, the other servers %d: moving to %d", m.RemotePort, want, want), time.Time{}, 0
			r.log.Info("proxy moves to the port the other servers opened", "proxy", m.Name, "opened", m.RemotePort, "port", want)
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.move(st)
			}()
			return true
		}
	}
	if m.Error == "" {
		st.up, st.err, st.next, st.remote = true, "", time.Time{}, m.RemotePort
		st.domains = m.Domains
		st.bo.Reset()
		if r.onReady != nil {
			r.onReady(st.cfg, m)
		}
		return true
	}
	st.up, st.err, st.next = false, m.Error, time.Time{}
	if down { // no retry: the health check registers it again when it passes
		return true
	}
	if permanentProxyCode(m.Code) {
		r.log.Error(fmt.Sprintf("proxy %s refused: %s; not retrying: this needs a change of its config or of the server's", m.Name, m.Error),
			"proxy", m.Name, "type", st.cfg.Type, "code", m.Code)
		return true
	}
	d := st.bo.Next()
	r.log.Warn(fmt.Sprintf("proxy %s refused: %s; retrying in %v", m.Name, m.Error, d.Round(100*time.Millisecond)),
		"proxy", m.Name, "type", st.cfg.Type, "code", m.Code, "attempt", st.bo.Attempt(), "retry_in", d)
	if st.timer != nil {
		return true // a retry is already pending
	}
	st.next = time.Now().Add(d)
	r.wg.Add(1)
	st.timer = time.AfterFunc(d, func() {
		defer r.wg.Done()
		r.sendMu.Lock() // a remove is sent before or after, never between
		defer r.sendMu.Unlock()
		r.mu.Lock()
		st.timer = nil
		stale := r.closed || r.state[st.cfg.Name] != st // closed, or removed by a reload
		r.mu.Unlock()
		if stale || r.down != nil && r.down(st.cfg.Name) {
			return
		}
		r.send(r.newMsg(st.cfg))
	})
	return true
}

// move asks the server to release a proxy and registers it again with
// the remote port of the other nodes.
func (r *registrar) move(st *regState) {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	r.mu.Lock()
	stale := r.closed || r.state[st.cfg.Name] != st
	r.mu.Unlock()
	if stale {
		return
	}
	r.send(&protocol.CloseProxy{Name: st.cfg.Name})
	r.send(r.newMsg(st.cfg))
}

// proxyState is the registration state of one proxy, for Status.
type proxyState struct {
	up      bool
	err     string
	next    time.Time
	remote  int
	domains []string
}

// states returns the state of every proxy of the registrar by name.
func (r *registrar) states() map[string]proxyState {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]proxyState, len(r.state))
	for name, st := range r.state {
		out[name] = proxyState{up: st.up, err: st.err, next: st.next, remote: st.remote, domains: st.domains}
	}
	return out
}

// pending reports whether a retry of the named proxy is scheduled (tests).
func (r *registrar) pending(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.state[name]
	return st != nil && st.timer != nil
}

// close stops the pending retries and waits for any that is running. It
// may be called more than once.
func (r *registrar) close() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		for _, st := range r.state {
			if st.timer != nil && st.timer.Stop() {
				st.timer = nil
				r.wg.Done()
			}
		}
	}
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}
