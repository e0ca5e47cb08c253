package client

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/bridge"
	"github.com/hopproxy/hop/pkg/bwlimit"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/dgrampool"
	"github.com/hopproxy/hop/pkg/idle"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/proxyheader"
	"github.com/hopproxy/hop/pkg/seal"
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
	rp := c.proxy(sw.Proxy)
	if rp == nil {
		c.log.Warn("server opened a stream for an unknown proxy", "proxy", sw.Proxy)
		st.Close()
		return
	}
	p := rp.cfg
	if p.Type.IsSecret() != (sw.Visitor != "") {
		c.log.Warn("server opened a stream that does not fit the proxy's type", "proxy", sw.Proxy, "type", p.Type)
		st.Close()
		return
	}
	if sw.Visitor != "" {
		c.serveVisitor(st, rp, sw)
		return
	}
	c.serveLocal(st, rp, sw.SrcAddr, sw.DstAddr)
}

// serveLocal carries a stream to the proxy's local service: datagrams for
// the datagram types, bytes for the others (in goroutines of their own:
// serveLocal returns once the bytes flow). src is the user's address and
// dst the server's address the user reached, for the PROXY protocol
// header when the proxy has one; a src or dst that is not an address (an
// xtcp visitor's) gives a header saying the address is unknown.
func (c *Client) serveLocal(st net.Conn, rp *runProxy, src, dst string) {
	p := rp.cfg
	local := net.JoinHostPort(p.LocalIP, strconv.Itoa(p.LocalPort))
	if p.Type.IsDatagram() {
		var dc datagramConn = framedDatagrams{st}
		if sc, ok := st.(*seal.Conn); ok {
			dc = sealedDatagrams{sc}
		}
		var hdr []byte
		if v := p.Transport.ProxyProtocolVersion; v != "" {
			h, err := proxyheader.Build(v, proxyheader.Datagram, src, dst)
			if err != nil { // validated config: not reached
				c.log.Warn("cannot build PROXY protocol header", "proxy", p.Name, "error", err)
				st.Close()
				return
			}
			hdr = h
		}
		c.workUDP(dc, rp, local, hdr)
		return
	}
	if p.Plugin.Type != "" {
		c.servePlugin(st, rp, src)
		return
	}
	lc, err := net.DialTimeout("tcp", local, localDialTimeout)
	if err != nil {
		c.localDown(p, err)
		st.Close()
		return
	}
	if v := p.Transport.ProxyProtocolVersion; v != "" {
		lc.SetWriteDeadline(time.Now().Add(localDialTimeout))
		err := proxyheader.Write(lc, v, proxyheader.Stream, src, dst)
		lc.SetWriteDeadline(time.Time{})
		if err != nil {
			c.localDown(p, fmt.Errorf("write PROXY protocol header: %w", err))
			lc.Close()
			st.Close()
			return
		}
	}
	if !rp.conns.Add(lc) { // stopped by a reload meanwhile
		lc.Close()
		st.Close()
		return
	}
	c.users.Add(lc)
	c.connWG.Add(1)
	pc := c.proxyConns(p.Name)
	pc.Opened()
	bridge.StartCounting(rp.limit.Conn(st, bwlimit.Out), rp.limit.Conn(lc, bwlimit.In), &pc.In, &pc.Out, func(in, out int64) {
		pc.Closed()
		if sc, ok := st.(*seal.Conn); ok {
			c.sealEnded(sc, c.log.With("proxy", p.Name), "owner", p.Name)
		}
		c.users.Remove(lc)
		rp.conns.Remove(lc)
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

// datagramConn carries whole datagrams: a sealed relay stream (sudp), or a
// plain stream of length-prefixed datagrams (udp).
type datagramConn interface {
	// ReadDatagram waits for the next datagram without holding a buffer
	// and returns it in one from dgrampool, which the caller puts back.
	ReadDatagram() (*[]byte, error)
	WriteDatagram(d []byte) error
	Close() error
}

// framedDatagrams is a udp proxy's data stream: 2-byte length prefixes.
// One goroutine writes.
type framedDatagrams struct{ net.Conn }

func (f framedDatagrams) ReadDatagram() (*[]byte, error) { return dgrampool.ReadDatagram(f.Conn) }

func (f framedDatagrams) WriteDatagram(d []byte) error {
	bp := dgrampool.Framed(d)
	_, err := f.Write(*bp)
	dgrampool.Put(bp)
	return err
}

// sealedDatagrams is a sealed relay stream of a datagram type: one record
// per datagram.
type sealedDatagrams struct{ *seal.Conn }

func (s sealedDatagrams) ReadDatagram() (*[]byte, error) {
	if err := s.WaitReadable(); err != nil {
		return nil, err
	}
	bp := dgrampool.Get(dgrampool.Large)
	n, err := s.Conn.ReadDatagram(*bp)
	if err != nil {
		dgrampool.Put(bp)
		return nil, err
	}
	*bp = (*bp)[:n]
	return bp, nil
}

// workUDP carries one source's datagrams between the stream and a UDP
// socket connected to the local service, until either side fails or the
// flow is idle for the proxy's idleTimeout. A non-empty hdr (a PROXY
// protocol v2 header, DGRAM) goes in front of every datagram sent to the
// local service; the replies come back as they are.
func (c *Client) workUDP(st datagramConn, rp *runProxy, local string, hdr []byte) {
	p := rp.cfg
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
	if !rp.conns.Add(lc) { // stopped by a reload meanwhile
		lc.Close()
		st.Close()
		return
	}
	defer rp.conns.Remove(lc)
	c.users.Add(lc)
	defer c.users.Remove(lc)
	pc := c.proxyConns(p.Name)
	pc.Opened()
	defer pc.Closed()
	var active idle.Stamp
	active.Touch()
	var once sync.Once
	stop := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background()) // ends waits for bandwidth tokens
	defer cancel()
	end := func() {
		once.Do(func() {
			cancel()
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
			n, err := lc.Read(*bp)
			if err == nil {
				active.Touch()
				err = rp.limit.Wait(ctx, bwlimit.Out, n)
			}
			if err == nil {
				if err = st.WriteDatagram((*bp)[:n]); err == nil {
					pc.Out.Add(int64(n))
				}
			}
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
		bp, err := st.ReadDatagram()
		if err != nil {
			if sd, ok := st.(sealedDatagrams); ok {
				c.sealEnded(sd.Conn, c.log.With("proxy", p.Name), "owner", p.Name)
			}
			break
		}
		active.Touch()
		if err := rp.limit.Wait(ctx, bwlimit.In, len(*bp)); err != nil {
			dgrampool.Put(bp)
			break
		}
		var n int
		if len(hdr) > 0 {
			out := append(append(make([]byte, 0, len(hdr)+len(*bp)), hdr...), *bp...)
			n, err = lc.Write(out)
			n = max(n-len(hdr), 0)
		} else {
			n, err = lc.Write(*bp)
		}
		pc.In.Add(int64(n))
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
