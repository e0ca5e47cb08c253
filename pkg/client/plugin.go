package client

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/plugin"
	"github.com/hopproxy/hop/pkg/seal"
)

// pluginSlot is the plugin handler of one runProxy, made at its first
// stream and closed when the runProxy retires or Run ends.
type pluginSlot struct {
	mu     sync.Mutex
	h      plugin.Handler
	err    error
	closed bool
}

func (s *pluginSlot) get(c *Client, p config.ProxyConfig) (plugin.Handler, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, plugin.ErrClosed
	}
	if s.h == nil && s.err == nil {
		s.h, s.err = plugin.New(p.Plugin, c.log.With("proxy", p.Name, "plugin", p.Plugin.Type))
	}
	return s.h, s.err
}

func (s *pluginSlot) close() {
	s.mu.Lock()
	s.closed = true
	h := s.h
	s.mu.Unlock()
	if h != nil {
		h.Close()
	}
}

// closePlugins closes the plugin handlers of every proxy, when Run ends.
func (c *Client) closePlugins() {
	c.run.mu.Lock()
	rps := make([]*runProxy, 0, len(c.run.proxies))
	for _, rp := range c.run.proxies {
		rps = append(rps, rp)
	}
	c.run.mu.Unlock()
	for _, rp := range rps {
		rp.plugin.close()
	}
}

// servePlugin hands a stream of a proxy with a plugin to the plugin, in a
// goroutine of its own.
func (c *Client) servePlugin(st net.Conn, rp *runProxy, src string) {
	p := rp.cfg
	h, err := rp.plugin.get(c, p)
	if err != nil {
		if c.due("plugin/" + p.Name) {
			c.log.Warn("plugin unavailable", "proxy", p.Name, "plugin", p.Plugin.Type, "error", err)
		}
		st.Close()
		return
	}
	pc := c.proxyConns(p.Name)
	cc := &countingConn{Conn: st, in: &pc.In, out: &pc.Out}
	if !rp.conns.Add(cc) { // stopped by a reload meanwhile
		st.Close()
		return
	}
	c.users.Add(cc)
	c.connWG.Add(1)
	pc.Opened()
	go func() {
		defer c.connWG.Done()
		h.Serve(cc, src)
		cc.Close()
		pc.Closed()
		if sc, ok := st.(*seal.Conn); ok {
			c.sealEnded(sc, c.log.With("proxy", p.Name), "owner", p.Name)
		}
		c.users.Remove(cc)
		rp.conns.Remove(cc)
		c.log.Debug("connection closed", "proxy", p.Name, "src", src, "bytes_in", cc.nin.Load(), "bytes_out", cc.nout.Load())
	}()
}

// countingConn adds the bytes read from the stream (from the user) to in
// and those written to it to out.
type countingConn struct {
	net.Conn
	in, out   *atomic.Int64
	nin, nout atomic.Int64
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.in.Add(int64(n))
	c.nin.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.out.Add(int64(n))
	c.nout.Add(int64(n))
	return n, err
}

// localDesc is where a proxy's streams go, for logs and Status: the local
// service's host:port, or its plugin ("plugin socks5", "plugin
// unix_domain_socket /var/run/docker.sock").
func localDesc(p config.ProxyConfig) string {
	pc := p.Plugin
	if pc.Type == "" {
		return net.JoinHostPort(p.LocalIP, strconv.Itoa(p.LocalPort))
	}
	s := "plugin " + string(pc.Type)
	for _, x := range []string{pc.UnixPath, pc.LocalPath, pc.LocalAddr} {
		if x != "" {
			s += " " + x
		}
	}
	return s
}
