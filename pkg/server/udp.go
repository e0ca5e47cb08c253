package server

import (
	"container/list"
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hopproxy/hop/pkg/bwlimit"
	"github.com/hopproxy/hop/pkg/dgrampool"
	"github.com/hopproxy/hop/pkg/idle"
	"github.com/hopproxy/hop/pkg/protocol"
)

// flowQueue bounds the datagrams waiting for one flow's stream, and
// flowQueueBytes the buffer bytes they hold; beyond either datagrams are
// dropped, as a congested UDP path would.
const (
	flowQueue      = 256
	flowQueueBytes = 256 << 10
)

// maxOpening bounds the flows of one proxy opening their stream at once.
// A yamux open cannot be abandoned, so a flow evicted while waiting for its
// turn never opens one: under a flood of new sources, the streams opened
// are those of the flows that stay.
const maxOpening = 32

// udpLimits bound the flows of one udp proxy.
type udpLimits struct {
	maxFlows   int           // limits.maxUDPFlowsPerProxy
	maxPerIP   int           // limits.maxUDPFlowsPerIP
	unanswered time.Duration // limits.udpUnansweredTimeout: idle time of a flow never answered
}

// udpRelay serves a udp proxy: one mux stream per source address (a flow),
// carrying length-prefixed datagrams in order, closed after idleTimeout
// (udpUnansweredTimeout while the client has never answered).
//
// The read loop never waits for a stream: a new source gets a flow whose
// own goroutine opens the stream while its first datagrams wait in its
// queue. Flows are capped per proxy and per source IP; when a cap is hit
// the least recently used flow goes: of the same IP for the per-IP cap,
// else one never answered, else any.
type udpRelay struct {
	srv     *Server
	p       *proxy
	idle    time.Duration
	lim     udpLimits
	open    func(src netip.AddrPort) (net.Conn, error) // a flow's stream to the client
	opening chan struct{}                              // maxOpening

	mu       sync.Mutex
	flows    map[netip.AddrPort]*flow
	perIP    map[netip.Addr]*list.List // flows of one IP, most recent first
	fresh    list.List                 // flows never answered, most recent first
	answered list.List                 // flows answered at least once
	wg       sync.WaitGroup

	evicted atomic.Int64 // flows closed to make room
	dropped atomic.Int64 // datagrams dropped on a full flow queue
}

type flow struct {
	src      netip.AddrPort
	ip       netip.Addr
	q        chan *[]byte
	queued   atomic.Int64 // buffer bytes in q
	active   idle.Stamp
	done     chan struct{}
	once     sync.Once
	answered bool          // under udpRelay.mu
	elem     *list.Element // in fresh or answered, under udpRelay.mu
	ipElem   *list.Element // in perIP[ip], under udpRelay.mu

	stMu   sync.Mutex
	stream net.Conn // set once opened
	closed bool
}

// close ends the flow; its goroutines return and free what they hold.
func (f *flow) close() {
	f.once.Do(func() {
		close(f.done)
		f.stMu.Lock()
		f.closed = true
		if f.stream != nil {
			f.stream.Close()
		}
		f.stMu.Unlock()
	})
}

func newUDPRelay(s *Server, p *proxy, idleMs int64) *udpRelay {
	idle := time.Duration(idleMs) * time.Millisecond
	if idle <= 0 {
		idle = 60 * time.Second
	}
	l := s.cfg.Limits
	lim := udpLimits{maxFlows: l.MaxUDPFlowsPerProxy, maxPerIP: l.MaxUDPFlowsPerIP, unanswered: min(l.UDPUnansweredTimeout.Duration, idle)}
	u := &udpRelay{srv: s, p: p, idle: idle, lim: lim, opening: make(chan struct{}, maxOpening),
		flows: map[netip.AddrPort]*flow{}, perIP: map[netip.Addr]*list.List{}}
	u.open = func(src netip.AddrPort) (net.Conn, error) {
		return p.owner.openStream(p.name, src.String(), p.pc.LocalAddr().String())
	}
	return u
}

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
		u.p.conns.In.Add(int64(n))
		f := u.flow(src)
		f.active.Touch()
		b := dgrampool.Framed(buf[:n])
		c := int64(cap(*b))
		if f.queued.Add(c) > flowQueueBytes && len(f.q) > 0 {
			f.queued.Add(-c)
			dgrampool.Put(b)
			u.dropped.Add(1)
			continue
		}
		select {
		case f.q <- b:
		default:
			f.queued.Add(-c)
			dgrampool.Put(b)
			u.dropped.Add(1)
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

// flow returns the flow of src, making room for it and starting it if it
// is new. It never blocks on the client.
func (u *udpRelay) flow(src netip.AddrPort) *flow {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	u.mu.Lock()
	if f := u.flows[src]; f != nil {
		u.touchLocked(f)
		u.mu.Unlock()
		return f
	}
	var victims []*flow
	ip := src.Addr()
	if l := u.perIP[ip]; l != nil && l.Len() >= u.lim.maxPerIP {
		victims = append(victims, l.Back().Value.(*flow))
		u.removeLocked(victims[0])
	}
	for len(u.flows) >= u.lim.maxFlows {
		e := u.fresh.Back()
		if e == nil {
			e = u.answered.Back()
		}
		v := e.Value.(*flow)
		u.removeLocked(v)
		victims = append(victims, v)
	}
	f := &flow{src: src, ip: ip, q: make(chan *[]byte, flowQueue), done: make(chan struct{})}
	f.active.Touch()
	u.flows[src] = f
	f.elem = u.fresh.PushFront(f)
	l := u.perIP[ip]
	if l == nil {
		l = list.New()
		u.perIP[ip] = l
	}
	f.ipElem = l.PushFront(f)
	u.wg.Add(1)
	u.mu.Unlock()
	u.p.conns.Opened() // Closed when run ends
	for _, v := range victims {
		v.close()
		u.evicted.Add(1)
	}
	go u.run(f)
	return f
}

// touchLocked makes f the most recently used.
func (u *udpRelay) touchLocked(f *flow) {
	if f.answered {
		u.answered.MoveToFront(f.elem)
	} else {
		u.fresh.MoveToFront(f.elem)
	}
	u.perIP[f.ip].MoveToFront(f.ipElem)
}

// removeLocked takes f out of the tables if it is still in them.
func (u *udpRelay) removeLocked(f *flow) {
	if u.flows[f.src] != f {
		return
	}
	delete(u.flows, f.src)
	if f.answered {
		u.answered.Remove(f.elem)
	} else {
		u.fresh.Remove(f.elem)
	}
	if l := u.perIP[f.ip]; l != nil {
		l.Remove(f.ipElem)
		if l.Len() == 0 {
			delete(u.perIP, f.ip)
		}
	}
}

// run opens the flow's stream, then moves datagrams from the queue into
// it while readLoop carries the answers back.
func (u *udpRelay) run(f *flow) {
	defer u.wg.Done()
	defer u.p.conns.Closed()
	defer u.drainQueue(f)
	select {
	case u.opening <- struct{}{}:
	case <-f.done: // evicted or idle before its turn
		return
	}
	st, err := u.open(f.src)
	<-u.opening
	if err != nil {
		u.p.log.Debug("cannot open stream for udp flow", "src", f.src, "error", err)
		u.drop(f)
		return
	}
	f.stMu.Lock()
	if f.closed {
		f.stMu.Unlock()
		st.Close()
		return
	}
	f.stream = st
	f.stMu.Unlock()
	ctx, cancel := context.WithCancel(context.Background()) // ends readLoop's wait for tokens
	defer cancel()
	u.wg.Add(1)
	go u.readLoop(ctx, f, st)
	st = u.p.limit.Conn(st, bwlimit.In)
	for {
		select {
		case b := <-f.q:
			_, err := st.Write(*b)
			f.queued.Add(-int64(cap(*b)))
			dgrampool.Put(b)
			if err != nil {
				u.drop(f)
				return
			}
		case <-f.done:
			return
		}
	}
}

// drainQueue returns the buffers still queued to the pool.
func (u *udpRelay) drainQueue(f *flow) {
	for {
		select {
		case b := <-f.q:
			f.queued.Add(-int64(cap(*b)))
			dgrampool.Put(b)
		default:
			return
		}
	}
}

// readLoop sends the client's answers back to the source.
func (u *udpRelay) readLoop(ctx context.Context, f *flow, st net.Conn) {
	defer u.wg.Done()
	for {
		bp, err := dgrampool.ReadDatagram(st)
		if err != nil {
			u.drop(f)
			return
		}
		f.active.Touch()
		u.markAnswered(f)
		if err := u.p.limit.Wait(ctx, bwlimit.Out, len(*bp)); err != nil {
			dgrampool.Put(bp)
			u.drop(f)
			return
		}
		n, err := u.p.pc.WriteToUDPAddrPort(*bp, f.src)
		u.p.conns.Out.Add(int64(n))
		dgrampool.Put(bp)
		if err != nil {
			u.drop(f)
			return
		}
	}
}

// markAnswered moves f to the answered flows on its first answer.
func (u *udpRelay) markAnswered(f *flow) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if f.answered || u.flows[f.src] != f {
		return
	}
	u.fresh.Remove(f.elem)
	f.answered = true
	f.elem = u.answered.PushFront(f)
}

func (u *udpRelay) drop(f *flow) {
	f.close()
	u.mu.Lock()
	u.removeLocked(f)
	u.mu.Unlock()
}

// janitor closes flows idle for longer than the idle timeout, or than
// udpUnansweredTimeout while never answered.
func (u *udpRelay) janitor(stop chan struct{}) {
	defer u.wg.Done()
	idle.Sweep(u.lim.unanswered, stop, func(now time.Time) bool {
		u.mu.Lock()
		var old []*flow
		for _, f := range u.flows {
			d := u.idle
			if !f.answered {
				d = u.lim.unanswered
			}
			if f.active.Idle(now, d) {
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

// udpStats is a snapshot of a relay, for tests and logs.
type udpStats struct {
	Flows, Answered, SourceIPs int
	Evicted, Dropped           int64
}

func (u *udpRelay) stats() udpStats {
	u.mu.Lock()
	defer u.mu.Unlock()
	return udpStats{Flows: len(u.flows), Answered: u.answered.Len(), SourceIPs: len(u.perIP),
		Evicted: u.evicted.Load(), Dropped: u.dropped.Load()}
}
