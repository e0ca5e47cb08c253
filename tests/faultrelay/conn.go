package faultrelay

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// conn is one relayed connection: the accepted client socket and the
// socket dialed to the target.
type conn struct {
	r      *Relay
	client *net.TCPConn
	ctx    context.Context // canceled by abort
	cancel context.CancelFunc
	done   chan struct{} // closed when run has torn everything down

	mu      sync.Mutex
	server  *net.TCPConn // nil until dialed
	aborted bool

	// severed is set when a socket failed while its direction was
	// black-holed: like a middlebox that forgot the flow, the relay then
	// swallows everything of this connection for good, so the surviving
	// side learns nothing (no FIN, no RST), even after Heal.
	severed atomic.Bool

	lastByte atomic.Int64 // unix nanos of the last byte read from either side, for SetIdleTimeout
}

// sever marks the connection severed, once.
func (c *conn) sever() {
	if c.severed.CompareAndSwap(false, true) {
		c.r.severed.Add(1)
	}
}

// config is the relay's configuration of direction i, or a black hole for
// a severed connection.
func (c *conn) config(i int) (mode, time.Duration, <-chan struct{}) {
	m, d, changed := c.r.config(i)
	if c.severed.Load() {
		m = blackHole
	}
	return m, d, changed
}

// run dials the target, relays both directions and tears the pair down.
func (c *conn) run() {
	defer func() {
		c.r.mu.Lock()
		delete(c.r.conns, c)
		c.r.mu.Unlock()
		c.r.active.Add(-1)
		close(c.done)
	}()

	d := net.Dialer{Timeout: dialTimeout}
	nc, err := d.DialContext(c.ctx, "tcp", c.r.target)
	if err != nil {
		c.abort(true)
		return
	}
	server := nc.(*net.TCPConn)
	tune(server)
	if !c.setServer(server) {
		return
	}

	var wg sync.WaitGroup
	for _, p := range []struct {
		i        int
		src, dst *net.TCPConn
	}{
		{c2s, c.client, server},
		{s2c, server, c.client},
	} {
		q := newQueue()
		wg.Go(func() {
			if err := c.read(p.i, p.src, q); err != nil {
				if m, _, _ := c.config(p.i); m == blackHole && c.ctx.Err() == nil {
					c.sever()
					return
				}
				c.abort(true)
			}
		})
		wg.Go(func() {
			if err := c.write(p.i, p.dst, q); err != nil {
				c.abort(true)
			}
		})
	}
	wg.Wait()
	c.abort(false) // both directions ended cleanly, unless aborted already
}

// setServer records the dialed socket. It reports false, and resets the
// socket, if the connection was aborted during the dial.
func (c *conn) setServer(s *net.TCPConn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted {
		s.SetLinger(0)
		s.Close()
		return false
	}
	c.server = s
	return true
}

// abort cancels the connection's goroutines and closes both sockets, with
// a reset if rst is set. Only the first call has an effect.
func (c *conn) abort(rst bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted {
		return
	}
	c.aborted = true
	c.cancel()
	for _, s := range []*net.TCPConn{c.client, c.server} {
		if s == nil {
			continue
		}
		if rst {
			// Linger 0 makes Close send RST and discard unsent data.
			s.SetLinger(0)
		}
		s.Close()
	}
}

// interruptRead makes a Read blocked on the source socket of direction i
// return with os.ErrDeadlineExceeded.
func (c *conn) interruptRead(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	src := c.client
	if i == s2c {
		src = c.server
	}
	if src != nil && !c.aborted {
		src.SetReadDeadline(time.Unix(1, 0))
	}
}

// read is the source side of direction i: it reads from src, subject to
// the mode and rate limit, and queues timestamped chunks for write. It
// returns nil at end of stream.
func (c *conn) read(i int, src *net.TCPConn, q *queue) error {
	r := c.r
	buf := make([]byte, ChunkSize)
	for {
		m, delay, changed := c.config(i)
		if m == stall {
			if err := sleep(c.ctx, -1, changed); err != nil {
				return err
			}
			continue
		}
		// A black hole drains at full speed; only forwarded bytes are
		// throttled.
		granted, gen := len(buf), uint64(0)
		if m == forward {
			var err error
			if granted, gen, err = r.take(c.ctx, i, len(buf)); err != nil {
				return err
			}
			if granted == 0 {
				continue
			}
		}

		n, err := src.Read(buf[:granted])
		if m == forward && n < granted {
			r.refund(i, granted-n, gen)
		}
		if n > 0 {
			c.lastByte.Store(time.Now().UnixNano())
			// Re-check: the mode may have changed while Read blocked.
			if m, _, _ := c.config(i); m == blackHole {
				r.dropped[i].Add(int64(n))
			} else {
				ch := chunk{data: append([]byte(nil), buf[:n]...), read: time.Now()}
				if err := q.push(c.ctx, ch, queueLimit(delay)); err != nil {
					return err
				}
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded) && c.ctx.Err() == nil:
			// Interrupted by Relay.interruptReads. Clear the deadline
			// before the configuration is re-checked at the top of the
			// loop; the order matters, see interruptReads.
			if err := src.SetReadDeadline(time.Time{}); err != nil {
				return err
			}
		case errors.Is(err, io.EOF):
			if m, _, _ := c.config(i); m == blackHole {
				c.sever() // the FIN vanishes with the flow
			}
			return q.push(c.ctx, chunk{eof: true, read: time.Now()}, math.MaxInt)
		default:
			return err
		}
	}
}

// queueLimit is the number of bytes a direction's queue may hold.
func queueLimit(delay time.Duration) int {
	if delay > 0 {
		return MaxQueue
	}
	return ChunkSize
}

// write is the destination side of direction i: it writes the queued
// chunks to dst once their delay has passed and the direction is not
// stalled, or discards them in a black hole. It returns nil after the end
// of stream was propagated or swallowed.
func (c *conn) write(i int, dst *net.TCPConn, q *queue) error {
	r := c.r
	for {
		ch, err := q.pop(c.ctx)
		if err != nil {
			return err
		}
		m, err := c.waitDue(i, ch.read)
		if err != nil {
			return err
		}
		switch {
		case m == blackHole && ch.eof:
			return nil // the FIN is swallowed, the direction is over
		case m == blackHole:
			r.dropped[i].Add(int64(len(ch.data)))
		case ch.eof:
			return dst.CloseWrite()
		default:
			n, err := dst.Write(ch.data)
			r.forwarded[i].Add(int64(n))
			if err != nil {
				return err
			}
		}
	}
}

// waitDue waits until a chunk read at t is due in direction i and the
// direction is not stalled, and returns the mode it found then.
func (c *conn) waitDue(i int, t time.Time) (mode, error) {
	for {
		m, delay, changed := c.config(i)
		var wait time.Duration
		switch m {
		case stall:
			wait = -1 // until the configuration changes
		case blackHole:
			return m, nil // no point delaying what is dropped
		default:
			if wait = time.Until(t.Add(delay)); wait <= 0 {
				return m, nil
			}
		}
		if err := sleep(c.ctx, wait, changed); err != nil {
			return 0, err
		}
	}
}

// sleep waits for d, or forever if d is negative, until changed is closed,
// or until ctx is done, which it reports as an error.
func sleep(ctx context.Context, d time.Duration, changed <-chan struct{}) error {
	var timer <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-timer:
		return nil
	case <-changed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// chunk is a read from a source socket, or its end of stream.
type chunk struct {
	data []byte
	eof  bool
	read time.Time // when it was read
}

// queue is a FIFO of chunks bounded in bytes, with one producer and one
// consumer.
type queue struct {
	mu    sync.Mutex
	items []chunk
	size  int           // bytes in items
	ready chan struct{} // signaled after a push
	space chan struct{} // signaled after a pop
}

func newQueue() *queue {
	return &queue{ready: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

// push appends ch once the queue holds at most limit-len(ch.data) bytes,
// or at once if it is empty.
func (q *queue) push(ctx context.Context, ch chunk, limit int) error {
	for {
		q.mu.Lock()
		if q.size == 0 || q.size+len(ch.data) <= limit {
			q.items = append(q.items, ch)
			q.size += len(ch.data)
			q.mu.Unlock()
			signal(q.ready)
			return nil
		}
		q.mu.Unlock()
		select {
		case <-q.space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// pop removes and returns the oldest chunk, waiting for one if need be.
func (q *queue) pop(ctx context.Context) (chunk, error) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			ch := q.items[0]
			q.items[0] = chunk{}
			q.items = q.items[1:]
			q.size -= len(ch.data)
			q.mu.Unlock()
			signal(q.space)
			return ch, nil
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-ctx.Done():
			return chunk{}, ctx.Err()
		}
	}
}

// signal wakes the waiter on a one-slot channel without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
