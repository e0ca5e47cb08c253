package server

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/idle"
	"github.com/hopproxy/hop/pkg/protocol"
)

// flowQueue bounds the datagrams waiting for one flow's stream; beyond it
// datagrams are dropped, as a congested UDP path would.
const flowQueue = 256

// udpRelay serves a udp proxy: one mux stream per source address (a flow),
// carrying length-prefixed datagrams in order, closed after idleTimeout.
type udpRelay struct {
	srv  *Server
	p    *proxy
	idle time.Duration

	mu    sync.Mutex
	flows map[netip.AddrPort]*flow
	wg    sync.WaitGroup
}

type flow struct {
	src    netip.AddrPort
	stream net.Conn
	q      chan []byte
	active idle.Stamp
	done   chan struct{}
	once   sync.Once
}

func (f *flow) close() {
	f.once.Do(func() {
		close(f.done)
		f.stream.Close()
	})
}

func newUDPRelay(s *Server, p *proxy, idleMs int64) *udpRelay {
	idle := time.Duration(idleMs) * time.Millisecond
	if idle <= 0 {
		idle = 60 * time.Second
	}
	return &udpRelay{srv: s, p: p, idle: idle, flows: map[netip.AddrPort]*flow{}}
}

var datagramPool = sync.Pool{New: func() any { b := make([]byte, 2+protocol.MaxDatagram); return &b }}

func (u *udpRelay) serve() {
	defer u.p.wg.Done()
	u.wg.Add(1)
	stopJanitor := make(chan struct{})
	go u.janitor(stopJanitor)
	buf := make([]byte, protocol.MaxDatagram)
	for {
		n, src, err := u.p.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		f := u.flow(src)
		if f == nil {
			continue
		}
		f.active.Touch()
		bp := datagramPool.Get().(*[]byte)
		b, _ := protocol.AppendDatagram((*bp)[:0], buf[:n])
		select {
		case f.q <- b:
		default:
			datagramPool.Put(bp)
		}
	}
	close(stopJanitor)
	u.mu.Lock()
	for _, f := range u.flows {
		f.close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

// flow returns the flow of src, opening its stream if it is new.
func (u *udpRelay) flow(src netip.AddrPort) *flow {
	u.mu.Lock()
	f := u.flows[src]
	u.mu.Unlock()
	if f != nil {
		return f
	}
	st, err := u.p.owner.openStream(u.p.name, src.String())
	if err != nil {
		u.p.log.Debug("cannot open stream for udp flow", "src", src, "error", err)
		return nil
	}
	f = &flow{src: src, stream: st, q: make(chan []byte, flowQueue), done: make(chan struct{})}
	f.active.Touch()
	u.mu.Lock()
	u.flows[src] = f
	u.mu.Unlock()
	u.wg.Add(2)
	go u.writeLoop(f)
	go u.readLoop(f)
	return f
}

// writeLoop moves datagrams from the queue into the stream.
func (u *udpRelay) writeLoop(f *flow) {
	defer u.wg.Done()
	for {
		select {
		case b := <-f.q:
			_, err := f.stream.Write(b)
			b = b[:cap(b)]
			datagramPool.Put(&b)
			if err != nil {
				u.drop(f)
				return
			}
		case <-f.done:
			return
		}
	}
}

// readLoop sends the client's answers back to the source.
func (u *udpRelay) readLoop(f *flow) {
	defer u.wg.Done()
	buf := make([]byte, protocol.MaxDatagram)
	for {
		n, err := protocol.ReadDatagram(f.stream, buf)
		if err != nil {
			u.drop(f)
			return
		}
		f.active.Touch()
		if _, err := u.p.pc.WriteToUDPAddrPort(buf[:n], f.src); err != nil {
			u.drop(f)
			return
		}
	}
}

func (u *udpRelay) drop(f *flow) {
	f.close()
	u.mu.Lock()
	if u.flows[f.src] == f {
		delete(u.flows, f.src)
	}
	u.mu.Unlock()
}

// janitor closes flows idle for longer than the idle timeout.
func (u *udpRelay) janitor(stop chan struct{}) {
	defer u.wg.Done()
	idle.Sweep(u.idle, stop, func(now time.Time) bool {
		u.mu.Lock()
		var old []*flow
		for _, f := range u.flows {
			if f.active.Idle(now, u.idle) {
				old = append(old, f)
			}
		}
		u.mu.Unlock()
		for _, f := range old {
			u.drop(f)
		}
		return true
	})
}
