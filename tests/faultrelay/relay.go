package faultrelay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Sizes of the relay's buffers; see the package documentation.
const (
	// SocketBuffer is the SO_RCVBUF and SO_SNDBUF the relay requests for
	// each of its sockets.
	SocketBuffer = 64 << 10
	// ChunkSize is the largest single read from a source socket.
	ChunkSize = 32 << 10
	// MaxBurst is the largest burst a rate limit lets through at once.
	MaxBurst = 16 << 10
	// MaxQueue is how many bytes a direction of a connection may hold
	// while a delay is set.
	MaxQueue = 4 << 20
)

// dialTimeout bounds the dial to the target for each accepted connection.
const dialTimeout = 10 * time.Second

// Direction selects which way of the relayed connections a fault applies
// to. Methods given any value other than the three below panic.
type Direction int

// Directions. Both is ClientToServer|ServerToClient.
const (
	ClientToServer Direction = 1 << iota // from the accepted side to the target
	ServerToClient                       // from the target to the accepted side
	Both           = ClientToServer | ServerToClient
)

// String returns the direction's name.
func (d Direction) String() string {
	switch d {
	case ClientToServer:
		return "ClientToServer"
	case ServerToClient:
		return "ServerToClient"
	case Both:
		return "Both"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// indexes returns the internal direction indexes d covers: 0 is
// ClientToServer, 1 is ServerToClient. It panics on an invalid Direction.
func (d Direction) indexes() []int {
	switch d {
	case ClientToServer:
		return []int{c2s}
	case ServerToClient:
		return []int{s2c}
	case Both:
		return []int{c2s, s2c}
	}
	panic("faultrelay: invalid " + d.String())
}

const (
	c2s = 0
	s2c = 1
)

// mode is the fault state of one direction.
type mode int

const (
	forward mode = iota
	blackHole
	stall
)

// dirState is the configuration and rate-limiter state of one direction,
// guarded by Relay.mu.
type dirState struct {
	mode   mode
	delay  time.Duration
	rate   int64     // bytes per second, 0 = unlimited
	tokens float64   // token bucket fill, in bytes
	last   time.Time // when tokens was last refilled
}

// burst returns the token bucket's capacity: 50 ms worth of the rate,
// at least 1 byte and at most MaxBurst.
func (s *dirState) burst() int {
	return int(max(1, min(MaxBurst, s.rate/20)))
}

// refill adds the tokens earned since s.last.
func (s *dirState) refill(now time.Time) {
	s.tokens += now.Sub(s.last).Seconds() * float64(s.rate)
	s.tokens = min(s.tokens, float64(s.burst()))
	s.last = now
}

// DirStats counts the bytes of one direction.
type DirStats struct {
	Forwarded int64 // written to the destination socket
	Dropped   int64 // discarded by a black hole
}

// Stats is a snapshot of a Relay's counters. Bytes lost because a
// connection was reset or closed are counted in neither field.
type Stats struct {
	Accepted int64 // connections accepted since Start
	Active   int64 // connections accepted and not yet torn down
	Severed  int64 // connections severed inside a black hole (see BlackHole)

	ClientToServer DirStats
	ServerToClient DirStats
}

// Relay is a running fault-injecting relay. Its methods are safe for
// concurrent use.
type Relay struct {
	ln     net.Listener
	target string
	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept loop and connection handlers

	mu      sync.Mutex
	dirs    [2]dirState
	gen     [2]uint64     // bumped on every change to dirs[i]
	changed chan struct{} // closed and replaced on every configuration change
	conns   map[*conn]struct{}
	closed  bool

	idleTimeout time.Duration // SetIdleTimeout (idle.go)
	janitor     bool          // its goroutine runs

	accepted  atomic.Int64
	active    atomic.Int64
	severed   atomic.Int64
	forwarded [2]atomic.Int64
	dropped   [2]atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

// Start listens on listenAddr, which must be a loopback address such as
// "127.0.0.1:0", and forwards every accepted connection to targetAddr.
// The relay runs until Close.
func Start(listenAddr, targetAddr string) (*Relay, error) {
	la, err := net.ResolveTCPAddr("tcp", listenAddr)
	if err != nil {
		return nil, fmt.Errorf("faultrelay: %w", err)
	}
	if !la.IP.IsLoopback() {
		return nil, fmt.Errorf("faultrelay: listen address %q is not loopback", listenAddr)
	}
	ln, err := net.ListenTCP("tcp", la)
	if err != nil {
		return nil, fmt.Errorf("faultrelay: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Relay{
		ln:      ln,
		target:  targetAddr,
		ctx:     ctx,
		cancel:  cancel,
		changed: make(chan struct{}),
		conns:   make(map[*conn]struct{}),
	}
	r.wg.Go(r.acceptLoop)
	return r, nil
}

// Addr returns the address the relay listens on, as host:port.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// BlackHole makes the relay silently discard all bytes flowing in dir,
// while still reading them so that both sockets stay open and ACKed.
// It replaces a Stall in dir. Bytes are dropped as the relay handles
// them: a test that must know its bytes were swallowed before calling Heal
// can poll Stats until Dropped counts them.
//
// A socket that ends (FIN, RST or any error) while its direction is
// black-holed severs its connection: from then on the relay swallows
// everything of that connection for good, Heal included, and never passes
// the end on, as a NAT that forgot the flow would. New connections after
// Heal are forwarded normally.
func (r *Relay) BlackHole(dir Direction) {
	r.update(dir, func(s *dirState) { s.mode = blackHole })
}

// Stall makes the relay stop reading and writing in dir, so the sender's
// buffers fill and its writes eventually block. Heal delivers what was
// held back. It replaces a BlackHole in dir.
func (r *Relay) Stall(dir Direction) {
	r.update(dir, func(s *dirState) { s.mode = stall })
	r.interruptReads(dir)
}

// Heal returns both directions to plain forwarding: it ends any BlackHole
// or Stall and removes any rate limit and delay.
func (r *Relay) Heal() {
	r.update(Both, func(s *dirState) { *s = dirState{} })
}

// SetRate limits dir to bytesPerSec bytes per second; 0 removes the limit.
// The token bucket starts empty. SetRate panics if bytesPerSec is negative.
func (r *Relay) SetRate(dir Direction, bytesPerSec int64) {
	if bytesPerSec < 0 {
		panic("faultrelay: negative rate")
	}
	now := time.Now()
	r.update(dir, func(s *dirState) {
		s.rate, s.tokens, s.last = bytesPerSec, 0, now
	})
	if bytesPerSec > 0 {
		// A reader blocked in Read may hold a larger grant from before.
		r.interruptReads(dir)
	}
}

// SetDelay delays every chunk flowing in dir by d after it was read,
// including chunks already inside the relay; 0 removes the delay. Order
// is preserved. SetDelay panics if d is negative.
func (r *Relay) SetDelay(dir Direction, d time.Duration) {
	if d < 0 {
		panic("faultrelay: negative delay")
	}
	r.update(dir, func(s *dirState) { s.delay = d })
}

// ResetAll aborts every current connection with a reset (RST) on both
// sides, and returns once they are torn down. New connections are
// accepted as usual.
func (r *Relay) ResetAll() {
	conns := r.snapshot()
	for _, c := range conns {
		c.abort(true)
	}
	for _, c := range conns {
		<-c.done
	}
}

// Stats returns a snapshot of the relay's counters.
func (r *Relay) Stats() Stats {
	return Stats{
		Accepted: r.accepted.Load(),
		Active:   r.active.Load(),
		Severed:  r.severed.Load(),
		ClientToServer: DirStats{
			Forwarded: r.forwarded[c2s].Load(),
			Dropped:   r.dropped[c2s].Load(),
		},
		ServerToClient: DirStats{
			Forwarded: r.forwarded[s2c].Load(),
			Dropped:   r.dropped[s2c].Load(),
		},
	}
}

// Close stops the listener, closes all connections and waits for all of
// the relay's goroutines to exit. It is safe to call more than once; every
// call returns the result of the first.
func (r *Relay) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		r.closeErr = r.ln.Close()
		r.cancel()
		for _, c := range r.snapshot() {
			c.abort(false)
		}
		r.wg.Wait()
	})
	return r.closeErr
}

// interruptReads makes readers in dir blocked in Read, which no channel
// can interrupt, re-check the configuration: it moves their read deadline
// into the past. A reader clears the deadline and then re-checks the
// configuration, which the caller stored before, so no change is missed.
func (r *Relay) interruptReads(dir Direction) {
	for _, c := range r.snapshot() {
		for _, i := range dir.indexes() {
			c.interruptRead(i)
		}
	}
}

// update applies f to the state of each direction in dir and wakes every
// goroutine waiting on the configuration.
func (r *Relay) update(dir Direction, f func(*dirState)) {
	idx := dir.indexes()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, i := range idx {
		f(&r.dirs[i])
		r.gen[i]++
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// config returns direction i's mode and delay, and a channel closed on the
// next configuration change.
func (r *Relay) config(i int) (mode, time.Duration, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dirs[i].mode, r.dirs[i].delay, r.changed
}

// take waits until the rate limit of direction i lets up to want bytes
// through, and returns how many it granted, with the configuration
// generation for refund. It grants 0 when it had to wait, so the caller
// can re-check the mode and take again.
func (r *Relay) take(ctx context.Context, i, want int) (int, uint64, error) {
	r.mu.Lock()
	s, gen := &r.dirs[i], r.gen[i]
	if s.rate == 0 {
		r.mu.Unlock()
		return want, gen, nil
	}
	s.refill(time.Now())
	n := min(want, s.burst())
	if s.tokens >= float64(n) {
		s.tokens -= float64(n)
		r.mu.Unlock()
		return n, gen, nil
	}
	wait := time.Duration((float64(n) - s.tokens) / float64(s.rate) * float64(time.Second))
	changed := r.changed
	r.mu.Unlock()
	return 0, gen, sleep(ctx, wait, changed)
}

// refund returns n unused tokens of a grant from generation gen to
// direction i's bucket, unless the direction was reconfigured since.
func (r *Relay) refund(i, n int, gen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.dirs[i]
	if s.rate > 0 && r.gen[i] == gen {
		s.tokens = min(s.tokens+float64(n), float64(s.burst()))
	}
}

// snapshot returns the current connections.
func (r *Relay) snapshot() []*conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	conns := make([]*conn, 0, len(r.conns))
	for c := range r.conns {
		conns = append(conns, c)
	}
	return conns
}

func (r *Relay) acceptLoop() {
	for {
		nc, err := r.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || r.ctx.Err() != nil {
				return
			}
			// A transient error such as EMFILE: back off briefly.
			select {
			case <-time.After(10 * time.Millisecond):
				continue
			case <-r.ctx.Done():
				return
			}
		}
		client := nc.(*net.TCPConn)
		tune(client)

		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			client.Close()
			return
		}
		ctx, cancel := context.WithCancel(r.ctx)
		c := &conn{r: r, client: client, ctx: ctx, cancel: cancel, done: make(chan struct{})}
		c.lastByte.Store(time.Now().UnixNano())
		r.conns[c] = struct{}{}
		r.accepted.Add(1)
		r.active.Add(1)
		// Added under mu after checking closed, so Close's Wait sees it.
		r.wg.Go(c.run)
		r.mu.Unlock()
	}
}

// tune shrinks a socket's kernel buffers; see the package documentation.
func tune(c *net.TCPConn) {
	// Best effort: a failure only makes faults take longer to bite.
	_ = c.SetReadBuffer(SocketBuffer)
	_ = c.SetWriteBuffer(SocketBuffer)
}
