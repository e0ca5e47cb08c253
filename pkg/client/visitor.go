package client

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/acceptloop"
	"github.com/hopproxy/hop/pkg/bridge"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/drain"
	"github.com/hopproxy/hop/pkg/idle"
	"github.com/hopproxy/hop/pkg/metrics"
	"github.com/hopproxy/hop/pkg/protocol"
)

// visitor serves one [[visitors]] entry: a local port whose connections
// (or datagrams) reach a secret proxy on another client, directly over a
// punched P2P path for xtcp/xudp when there is one, else relayed by hops.
type visitor struct {
	c    *Client
	cfg  config.VisitorConfig
	log  *slog.Logger
	ln   net.Listener // stcp, xtcp
	pc   *net.UDPConn // sudp, xudp
	link *p2pLink     // xtcp, xudp
	wg   sync.WaitGroup
	// open are the application connections of a stream visitor, closed
	// gracePeriod after a reload removed it.
	open drain.Set

	// datagram visitors: one flow per local source address
	mu    sync.Mutex
	flows map[netip.AddrPort]*vflow
	byID  map[uint32]*vflow
	next  uint32
}

// startVisitors binds every visitor's local port. A visitor whose port
// cannot be bound is logged and skipped; the others run. From here on,
// reloads start and stop visitors, with ctx.
func (c *Client) startVisitors(ctx context.Context) {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	c.run.mu.Lock()
	c.run.ctx = ctx
	vcs := c.run.visitors
	c.run.mu.Unlock()
	for _, vc := range vcs {
		c.startVisitor(ctx, vc)
	}
}

// startVisitor binds a visitor's local port and serves it, or logs why it
// cannot. Callers hold reloadMu.
func (c *Client) startVisitor(ctx context.Context, vc config.VisitorConfig) {
	v := &visitor{c: c, cfg: vc, log: c.log.With("visitor", vc.Name, "type", vc.Type, "server_name", vc.ServerName),
		flows: map[netip.AddrPort]*vflow{}, byID: map[uint32]*vflow{}}
	addr := net.JoinHostPort(vc.BindAddr, strconv.Itoa(vc.BindPort))
	var err error
	if vc.Type.IsDatagram() {
		var ua *net.UDPAddr
		if ua, err = net.ResolveUDPAddr("udp", addr); err == nil {
			v.pc, err = net.ListenUDP("udp", ua)
		}
	} else {
		v.ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		v.log.Error("visitor cannot listen", "addr", addr, "error", err)
		c.run.mu.Lock()
		c.run.verr[vc.Name] = fmt.Sprintf("cannot listen on %s: %v", addr, err)
		c.run.mu.Unlock()
		return
	}
	if vc.Type.IsP2P() {
		v.link = newP2PLink(v)
	}
	c.run.mu.Lock()
	c.run.running[vc.Name] = v
	delete(c.run.verr, vc.Name)
	c.run.mu.Unlock()
	v.log.Info("visitor listening", "addr", addr)
	v.wg.Add(1)
	if v.pc != nil {
		go v.serveDatagrams()
	} else {
		go v.serveStreams()
	}
	if v.link != nil {
		v.wg.Add(1)
		go v.link.retryLoop(ctx)
	}
}

// stopVisitors closes the visitors' ports and waits for them. Reloads
// after it are refused (ErrStopped).
func (c *Client) stopVisitors() {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	c.run.mu.Lock()
	c.run.stopped = true
	vs := make([]*visitor, 0, len(c.run.running))
	for _, v := range c.run.running {
		vs = append(vs, v)
	}
	clear(c.run.running)
	c.run.mu.Unlock()
	for _, v := range vs {
		v.closePort()
		if v.link != nil {
			v.link.close()
		}
	}
	for _, v := range vs {
		v.wg.Wait()
	}
}

// closePort closes the visitor's local port.
func (v *visitor) closePort() {
	if v.ln != nil {
		v.ln.Close()
	}
	if v.pc != nil {
		v.pc.Close()
	}
}

// serveStreams accepts application connections until the visitor's port
// closes; a failed accept is waited out and retried (package acceptloop).
func (v *visitor) serveStreams() {
	defer v.wg.Done()
	acceptloop.Serve(context.Background(), v.ln, func(app net.Conn) {
		if !v.open.Add(app) { // stopped by a reload
			app.Close()
			return
		}
		vc := v.conns()
		vc.Opened()
		v.c.users.Add(app)
		v.c.connWG.Add(1)
		go func() {
			defer v.c.connWG.Done()
			defer vc.Closed()
			defer v.c.users.Remove(app)
			defer v.open.Remove(app)
			v.serveStream(app, vc)
		}()
	}, acceptloop.Options{Log: v.log})
}

// serveStream carries one application connection: over the P2P link
// for xtcp (relayed at once, direct when the punch succeeds), over a relay
// of its own for stcp.
func (v *visitor) serveStream(app net.Conn, vc *metrics.Conns) {
	if v.link != nil {
		st, err := v.link.openStream(app)
		if err != nil {
			if v.c.due("relay/" + v.cfg.Name) {
				v.log.Warn("cannot reach the proxy", "error", err)
			}
			app.Close()
			return
		}
		v.log.Debug("connection opened on the P2P link", "src", app.RemoteAddr().String())
		bridge.JoinCounting(app, st, &vc.Out, &vc.In)
		return
	}
	st, err := v.c.openRelayFrom(v.cfg, app.RemoteAddr().String()+" "+app.LocalAddr().String())
	if err != nil {
		if v.c.due("relay/" + v.cfg.Name) {
			v.log.Warn("cannot reach the proxy", "error", err)
		}
		app.Close()
		return
	}
	v.log.Debug("connection relayed", "src", app.RemoteAddr().String())
	bridge.JoinCounting(app, st, &vc.Out, &vc.In)
	v.c.sealEnded(st, v.log, "visitor", v.cfg.Name)
}

// vflow is one local source of a datagram visitor.
type vflow struct {
	src    netip.AddrPort
	id     uint32
	relay  net.Conn // relayed flow; nil for a direct one
	q      chan []byte
	active idle.Stamp
	done   chan struct{}
	once   sync.Once
}

func (f *vflow) close() {
	f.once.Do(func() {
		close(f.done)
		if f.relay != nil {
			f.relay.Close()
		}
	})
}

func (v *visitor) serveDatagrams() {
	defer v.wg.Done()
	stop := make(chan struct{})
	v.wg.Add(1)
	go v.janitor(stop)
	buf := make([]byte, protocol.MaxDatagram)
	vc := v.conns()
	for {
		n, src, err := v.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		v.mu.Lock()
		f := v.flows[src]
		if f == nil {
			v.next++
			f = &vflow{src: src, id: v.next, q: make(chan []byte, 256), done: make(chan struct{})}
			vc.Opened() // Closed when runFlow ends
			v.flows[src] = f
			v.byID[f.id] = f
			v.wg.Add(1)
			go v.runFlow(f)
		}
		v.mu.Unlock()
		f.active.Touch()
		vc.Out.Add(int64(n))
		select {
		case f.q <- append([]byte(nil), buf[:n]...):
		default: // queue full: drop, as a congested UDP path would
		}
	}
	close(stop)
	v.mu.Lock()
	for _, f := range v.flows {
		f.close()
	}
	v.mu.Unlock()
}

// runFlow moves the flow's datagrams: over the P2P link for xudp (its
// datagrams tagged with the flow's ID), over a relay of its own for sudp.
func (v *visitor) runFlow(f *vflow) {
	defer v.wg.Done()
	defer v.conns().Closed()
	defer v.dropFlow(f)
	if v.link != nil {
		hdr := make([]byte, 4, 4+protocol.MaxDatagram)
		binary.BigEndian.PutUint32(hdr, f.id)
		for {
			select {
			case d := <-f.q:
				lc, err := v.link.get()
				if err != nil {
					if v.c.due("relay/" + v.cfg.Name) {
						v.log.Warn("cannot reach the proxy", "error", err)
					}
					return
				}
				if err := lc.link.Send(append(hdr[:4], d...)); err != nil {
					continue // the link ended: the next datagram makes a new one
				}
			case <-f.done:
				return
			}
		}
	}
	st, err := v.c.openRelay(v.cfg)
	if err != nil {
		if v.c.due("relay/" + v.cfg.Name) {
			v.log.Warn("cannot reach the proxy", "error", err)
		}
		return
	}
	v.mu.Lock()
	f.relay = st
	v.mu.Unlock()
	select {
	case <-f.done: // closed while the relay was opening
		st.Close()
		return
	default:
	}
	v.log.Debug("datagram flow relayed", "src", f.src)
	v.wg.Add(1)
	go func() { // answers → local source
		defer v.wg.Done()
		defer f.close()
		buf := make([]byte, protocol.MaxDatagram)
		for {
			n, err := st.ReadDatagram(buf)
			if err != nil {
				v.c.sealEnded(st, v.log, "visitor", v.cfg.Name)
				return
			}
			f.active.Touch()
			n, _ = v.pc.WriteToUDPAddrPort(buf[:n], f.src)
			v.conns().In.Add(int64(n))
		}
	}()
	for {
		select {
		case d := <-f.q:
			if err := st.WriteDatagram(d); err != nil {
				return
			}
		case <-f.done:
			return
		}
	}
}

// deliverDirect hands a datagram that came over the P2P link to its
// flow's local source.
func (v *visitor) deliverDirect(b []byte) {
	if len(b) < 4 {
		return
	}
	v.mu.Lock()
	f := v.byID[binary.BigEndian.Uint32(b)]
	v.mu.Unlock()
	if f == nil {
		return
	}
	f.active.Touch()
	n, _ := v.pc.WriteToUDPAddrPort(b[4:], f.src)
	v.conns().In.Add(int64(n))
}

// conns is the visitor's counters (see stats.go).
func (v *visitor) conns() *metrics.Conns {
	return v.c.metrics.conns(v.c.metrics.visitors, v.cfg.Name)
}

func (v *visitor) dropFlow(f *vflow) {
	f.close()
	v.mu.Lock()
	if v.flows[f.src] == f {
		delete(v.flows, f.src)
		delete(v.byID, f.id)
	}
	v.mu.Unlock()
}

// janitor closes flows idle for longer than idleTimeout.
func (v *visitor) janitor(stop chan struct{}) {
	defer v.wg.Done()
	timeout := v.cfg.IdleTimeout.Duration
	idle.Sweep(timeout, stop, func(now time.Time) bool {
		v.mu.Lock()
		var old []*vflow
		for _, f := range v.flows {
			if f.active.Idle(now, timeout) {
				old = append(old, f)
			}
		}
		v.mu.Unlock()
		for _, f := range old {
			f.close()
		}
		return true
	})
}
