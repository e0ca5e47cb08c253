package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hopproxy/hop/pkg/auth"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/control"
	"github.com/hopproxy/hop/pkg/heartbeat"
	"github.com/hopproxy/hop/pkg/mux"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/transport"
)

// Software is sent in the ClientHello.
const Software = "hopc/0.1"

// session runs one connection to node n. It returns how long the
// session was logged in (0 if it never was) and why it ended.
func (c *Client) session(ctx context.Context, n *node) (time.Duration, error) {
	addr := n.addr
	ka := c.cfg.Transport.TCPKeepalive
	raw, tc, err := c.connect(ctx, n, transport.KeepAlive{Idle: ka.Idle.Duration, Interval: ka.Interval.Duration, Count: ka.Count})
	if err != nil {
		return 0, err
	}
	binding, err := transport.Binding(tc)
	if err != nil {
		tc.Close()
		return 0, err
	}
	hello := protocol.ClientHello{User: c.cfg.User, ClientID: c.id, HeartbeatIntervalMs: c.heartbeatInterval().Milliseconds(), Software: Software}
	w, err := auth.Client(tc, c.cfg.Auth.Token, binding, c.identity, hello)
	if err != nil {
		tc.Close()
		return 0, fmt.Errorf("login to %s: %w", addr, err)
	}
	ms, err := mux.Client(tc, c.muxConfig())
	if err != nil {
		tc.Close()
		return 0, err
	}
	ctrl, err := ms.Open()
	if err != nil {
		ms.Close()
		return 0, fmt.Errorf("open control stream: %w", err)
	}
	raw.SetDeadline(time.Time{})

	start := time.Now()
	n.mu.Lock()
	n.stats.Sessions++
	n.mu.Unlock()
	c.mu.Lock()
	c.stats.Sessions++
	c.stats.LoggedIn = true
	c.mu.Unlock()
	c.metrics.m.Sessions.WithLabelValues(n.addr).Inc()
	c.metrics.m.SessionUp.WithLabelValues(n.addr).Set(1)
	hb := c.negotiate(w)
	c.log.Info("logged in", "server", n.name, "session", w.SessionID,
		"heartbeat_interval", hb.Interval, "heartbeat_timeout", hb.Timeout,
		"mux_keepalive", c.cfg.Mux.KeepaliveInterval.Duration)
	cause := c.serve(ctx, n, &live{ms: ms, ch: control.New(ctrl), sessionID: w.SessionID, probeKey: w.ProbeKey, conn: tc, addr: addr, node: n}, hb)
	c.sessionEnded(n, cause)
	return max(time.Since(start), time.Nanosecond), cause
}

// negotiate returns the heartbeat to run: the configured one, with the
// interval shortened when the server's timeout needs more frequent pings.
func (c *Client) negotiate(w *protocol.Welcome) heartbeat.Config {
	hb := heartbeat.Config{Interval: c.heartbeatInterval(), Timeout: c.cfg.Heartbeat.Timeout.Duration}
	serverTimeout := time.Duration(w.HeartbeatTimeoutMs) * time.Millisecond
	if c.auto != nil && w.MaxHeartbeatIntervalMs > 0 {
		// hops takes "auto" intervals up to its maximum, and stretches
		// its timeout to fit (HeartbeatUpdate, sent right after login).
		hb.Interval = min(hb.Interval, time.Duration(w.MaxHeartbeatIntervalMs)*time.Millisecond)
		if hb.Timeout > 0 {
			hb.Timeout = max(hb.Timeout, 3*hb.Interval)
		}
		return hb
	}
	if serverTimeout > 0 && hb.Interval > serverTimeout/3 {
		adapted := serverTimeout / 3
		c.log.Warn("heartbeat interval adapted to the server", "configured", hb.Interval, "server_timeout", serverTimeout, "using", adapted)
		hb.Interval = adapted
		if hb.Timeout > 0 && hb.Timeout <= adapted {
			hb.Timeout = 3 * adapted
		}
	}
	return hb
}

// connect dials node n with TCP keepalive ka and does the TLS handshake,
// within transport.dialTimeout and handshakeTimeout; the deadline stays
// set on raw for the caller's own handshake. On error nothing is left
// open.
func (c *Client) connect(ctx context.Context, n *node, ka transport.KeepAlive) (raw net.Conn, tc *tls.Conn, err error) {
	raw, err = transport.Dial(ctx, n.addr, c.cfg.Transport.ConnectServerLocalIP, c.cfg.Transport.DialTimeout.Duration, ka)
	if err != nil {
		return nil, nil, fmt.Errorf("dial %s: %w", n.addr, err)
	}
	raw.SetDeadline(time.Now().Add(c.cfg.Transport.HandshakeTimeout.Duration))
	tc = tls.Client(raw, c.tlsFor(n))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, nil, fmt.Errorf("TLS handshake with %s: %w", n.addr, err)
	}
	return raw, tc, nil
}

// tlsFor is the TLS config for node n: without transport.tls.serverName,
// the name checked (with trustedCaFile) and sent is the host of the
// node's endpoint as configured, as tls.Dial does.
func (c *Client) tlsFor(n *node) *tls.Config {
	if c.tls.ServerName != "" {
		return c.tls
	}
	host, _, err := net.SplitHostPort(n.endpoint)
	if err != nil {
		return c.tls
	}
	t := c.tls.Clone()
	t.ServerName = host
	return t
}

// heartbeatInterval is the interval configured, or the one "auto" uses
// now.
func (c *Client) heartbeatInterval() time.Duration {
	if c.auto != nil {
		return c.auto.interval()
	}
	return c.cfg.Heartbeat.Interval.Duration
}

// serve runs a logged-in session until it ends and returns the cause.
func (c *Client) serve(ctx context.Context, n *node, l *live, hbCfg heartbeat.Config) error {
	ms, ch := l.ms, l.ch
	hb := heartbeat.Start(hbCfg, ch.TrySend, ms.LastRead)
	l.hb = hb
	var draining atomic.Bool
	var wg sync.WaitGroup
	defer func() {
		hb.Close()
		<-ms.Done()
		wg.Wait()
		ch.Close()
		ms.Close()
	}()

	reg := c.attachRegistrar(n, ch)
	defer c.detachRegistrar(n, reg)
	if err := reg.start(ctx); err != nil {
		ms.CloseWithCause(err)
		return ms.Err()
	}

	c.setLive(n, l)
	defer c.setLive(n, nil)
	if c.auto != nil && l.probeKey != "" {
		c.auto.ask(l) // hops follows the interval in use from the start
	}
	if usesP2P(c.runningConfig()) {
		c.connWG.Add(1)
		go c.learnFiltering(ctx)
	}
	wg.Add(2)
	go func() { // streams opened by the server: one per user connection
		defer wg.Done()
		for {
			st, err := ms.Accept()
			if err != nil {
				return
			}
			if draining.Load() {
				st.Close()
				continue
			}
			c.connWG.Add(1)
			go c.work(st)
		}
	}()
	go func() { // session-wide events: heartbeat timeout, shutdown
		defer wg.Done()
		select {
		case <-hb.Done():
			if err := hb.Err(); err != nil {
				ms.CloseWithCause(err)
			}
		case <-ms.Done():
		case <-ctx.Done():
			draining.Store(true)
			c.drain(ch, ms)
		}
	}()

	for {
		msg, err := ch.Recv()
		if err != nil {
			ms.CloseWithCause(fmt.Errorf("control stream ended: %w", err))
			break
		}
		if hb.Handle(msg) {
			continue
		}
		hb.Heard()
		switch m := msg.(type) {
		case *protocol.NewProxyResp:
			if !reg.result(m) {
				c.log.Warn("server answered for an unknown proxy", "proxy", m.Name)
			}
			continue
		case *protocol.P2PAnswer, *protocol.P2PGo, *protocol.P2PAuth:
			c.waits.deliver(m)
			continue
		case *protocol.P2POffer:
			c.connWG.Add(1)
			go c.ownerOffer(ctx, l, m)
			continue
		case *protocol.HeartbeatUpdate:
			if c.auto != nil { // the interval hops accepted
				c.auto.accept(l, m)
				continue
			}
		}
		ms.CloseWithCause(fmt.Errorf("protocol violation: the server sent %v on the control stream", msg.Type()))
		break
	}
	<-ms.Done()
	return ms.Err()
}

// drain is hopc's graceful stop: ask the server to close our public ports,
// let open connections finish for up to gracePeriod, then close.
func (c *Client) drain(ch *control.Channel, ms *mux.Session) {
	grace := c.cfg.GracePeriod.Duration
	sctx, cancel := context.WithTimeout(context.Background(), min(grace, time.Second))
	for _, p := range c.runningConfig().Proxies {
		ch.Send(sctx, &protocol.CloseProxy{Name: p.Name, Shutdown: true})
	}
	cancel()
	if n := c.users.Count(); n > 0 {
		c.log.Info("shutting down: draining connections", "open", n, "grace", grace)
		if !c.users.WaitIdle(grace) {
			c.log.Warn("grace period over: closing remaining connections", "open", c.users.Count())
		}
	}
	ms.CloseWithCause(errShutdown)
	c.users.CloseAll()
}

// proxyStarted logs a proxy node n accepted; remote is where users
// reach it on that node (its host as configured, and the port).
func (c *Client) proxyStarted(n *node, p config.ProxyConfig, r *protocol.NewProxyResp) {
	if p.Type.IsSecret() {
		c.log.Info("secret proxy registered", "proxy", r.Name, "type", p.Type, "local", localDesc(p), "server", n.name)
		return
	}
	host, _, err := net.SplitHostPort(n.endpoint)
	if err != nil {
		host = n.endpoint
	}
	c.log.Info("proxy started", "proxy", r.Name, "type", p.Type,
		"local", localDesc(p),
		"remote", net.JoinHostPort(host, strconv.Itoa(r.RemotePort)), "server", n.name)
}
