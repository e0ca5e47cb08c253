package client

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/bridge"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/dgrampool"
	"github.com/hopproxy/hop/pkg/idle"
	"github.com/hopproxy/hop/pkg/protocol"
)

// localDialTimeout bounds the connect to a local service.
const localDialTimeout = 5 * time.Second

// warnEvery rate-limits the "local service unreachable" warning per proxy.
const warnEvery = 10 * time.Second

// work serves one stream opened by the server.
func (c *Client) work(st net.Conn) {
	defer c.connWG.Done()
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	sw, err := protocol.ReadAs[*protocol.StartWork](st)
	if err != nil {
		c.log.Warn("bad data stream from server", "error", err)
		st.Close()
		return
	}
	st.SetReadDeadline(time.Time{})
	p, ok := c.proxies[sw.Proxy]
	if !ok {
		c.log.Warn("server opened a stream for an unknown proxy", "proxy", sw.Proxy)
		st.Close()
		return
	}
	if p.Type.IsSecret() != (sw.Visitor != "") {
		c.log.Warn("server opened a stream that does not fit the proxy's type", "proxy", sw.Proxy, "type", p.Type)
		st.Close()
		return
	}
	if sw.Visitor != "" {
		c.serveVisitor(st, p, sw)
		return
	}
	c.serveLocal(st, p, sw.SrcAddr)
}

// serveLocal carries a stream to the proxy's local service: datagrams for
// the datagram types, bytes for the others (in goroutines of their own:
// serveLocal returns once the bytes flow).
func (c *Client) serveLocal(st net.Conn, p config.ProxyConfig, src string) {
	local := net.JoinHostPort(p.LocalIP, strconv.Itoa(p.LocalPort))
	if p.Type.IsDatagram() {
		c.workUDP(st, p, local)
		return
	}
	lc, err := net.DialTimeout("tcp", local, localDialTimeout)
	if err != nil {
		c.localDown(p, err)
		st.Close()
		return
	}
	c.users.Add(lc)
	c.connWG.Add(1)
	bridge.Start(st, lc, func(in, out int64) {
		c.users.Remove(lc)
		c.log.Debug("connection closed", "proxy", p.Name, "src", src, "bytes_in", in, "bytes_out", out)
		c.connWG.Done()
	})
}

// localDown logs that a proxy's local service refused a connection, at
// most once per warnEvery per proxy.
func (c *Client) localDown(p config.ProxyConfig, err error) {
	if c.due("local/" + p.Name) {
		c.log.Warn("local service unreachable", "proxy", p.Name, "local", fmt.Sprintf("%s:%d", p.LocalIP, p.LocalPort), "error", err)
	}
}

// workUDP carries one source's datagrams between the stream and a UDP
// socket connected to the local service, until either side fails or the
// flow is idle for the proxy's idleTimeout.
func (c *Client) workUDP(st net.Conn, p config.ProxyConfig, local string) {
	ua, err := net.ResolveUDPAddr("udp", local)
	if err != nil {
		c.localDown(p, err)
		st.Close()
		return
	}
	lc, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		c.localDown(p, err)
		st.Close()
		return
	}
	c.users.Add(lc)
	defer c.users.Remove(lc)
	var active idle.Stamp
	active.Touch()
	var once sync.Once
	stop := make(chan struct{})
	end := func() {
		once.Do(func() {
			close(stop)
			st.Close()
			lc.Close()
		})
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // local service → stream
		defer wg.Done()
		defer end()
		for {
			// Wait for a datagram without holding a buffer: an idle flow
			// costs no 64 KiB.
			if err := bridge.WaitReadable(lc); err != nil {
				return
			}
			bp := dgrampool.Get(dgrampool.Large)
			n, err := lc.Read((*bp)[2:])
			if err != nil {
				dgrampool.Put(bp)
				return
			}
			active.Touch()
			b, _ := protocol.AppendDatagram((*bp)[:0], (*bp)[2:2+n])
			_, err = st.Write(b)
			dgrampool.Put(bp)
			if err != nil {
				return
			}
		}
	}()
	go func() { // idle timeout
		defer wg.Done()
		idle.Sweep(p.IdleTimeout.Duration, stop, func(now time.Time) bool {
			if active.Idle(now, p.IdleTimeout.Duration) {
				end()
				return false
			}
			return true
		})
	}()
	for {
		bp, err := dgrampool.ReadDatagram(st)
		if err != nil {
			break
		}
		active.Touch()
		_, err = lc.Write(*bp)
		dgrampool.Put(bp)
		if err != nil {
			break
		}
	}
	end()
	wg.Wait()
}

// due reports whether a rate-limited warning under key may be logged now,
// at most once per warnEvery.
func (c *Client) due(key string) bool {
	c.warnMu.Lock()
	defer c.warnMu.Unlock()
	now := time.Now()
	if now.Sub(c.lastWarn[key]) < warnEvery {
		return false
	}
	c.lastWarn[key] = now
	return true
}
