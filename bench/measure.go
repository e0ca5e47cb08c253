package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// service is a loopback TCP server (the sink or the echo) that counts the
// bytes it reads and the connections it has open.
type service struct {
	ln     net.Listener
	handle func(s *service, c net.Conn)
	read   atomic.Int64 // bytes read from all connections
	active atomic.Int64 // connections open now

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// newSink starts a service that reads and discards everything.
func newSink() (*service, error) {
	return newService(func(s *service, c net.Conn) {
		buf := make([]byte, 256<<10)
		for {
			n, err := c.Read(buf)
			s.read.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
}

// newEcho starts a service that writes back everything it reads.
func newEcho() (*service, error) {
	return newService(func(s *service, c net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			s.read.Add(int64(n))
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
}

func newService(handle func(*service, net.Conn)) (*service, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &service{ln: ln, handle: handle, conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *service) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.active.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				s.active.Add(-1)
			}()
			s.handle(s, c)
		}()
	}
}

func (s *service) Addr() string { return s.ln.Addr().String() }

// Close stops accepting, closes every open connection and waits for the
// goroutines. It is safe to call twice.
func (s *service) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// waitIdle polls until the service has no open connection: the connections
// of a phase, and the proxy's connections behind them, are all closed.
func (s *service) waitIdle(ctx context.Context, d time.Duration) error {
	return poll(ctx, d, func() bool { return s.active.Load() == 0 }, func() string {
		return fmt.Sprintf("%d connections to %s still open after %v", s.active.Load(), s.Addr(), d)
	})
}

// poll checks cond every 20 ms until it holds, d passes (the error says
// what is missing) or ctx ends.
func poll(ctx context.Context, d time.Duration, cond func() bool, what func() string) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New(what())
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func dial(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }

// tputResult is what the sink received during the measuring window, and the
// CPU seconds the proxy used meanwhile.
type tputResult struct {
	bytes   int64
	elapsed time.Duration
	cpu     float64
}

func (r tputResult) gbps() float64 { return float64(r.bytes) * 8 / r.elapsed.Seconds() / 1e9 }

// throughput runs streams senders through addr to sink. The senders write
// for warmup first; then the bytes the sink receives are counted for dur.
// cpu, if not nil, is read at both ends of that window. Each sender stops
// at the end of the window or after 64 GiB, whichever comes first.
func throughput(ctx context.Context, addr string, sink *service, streams int, warmup, dur time.Duration, cpu func() float64) (tputResult, error) {
	const chunk = 128 << 10
	const maxChunks = 64 << 30 / chunk
	buf := make([]byte, chunk)
	rand.Read(buf) // incompressible, in case a proxy compresses

	var conns []net.Conn
	for range streams {
		c, err := dial(addr)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return tputResult{}, err
		}
		conns = append(conns, c)
	}
	var (
		stopped atomic.Bool
		wg      sync.WaitGroup
		errOnce sync.Once
		werr    error
	)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range maxChunks {
				if _, err := c.Write(buf); err != nil {
					if !stopped.Load() {
						errOnce.Do(func() { werr = fmt.Errorf("writing to %s: %w", addr, err) })
					}
					return
				}
			}
		}()
	}
	stop := func() {
		stopped.Store(true)
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}

	if err := sleep(ctx, warmup); err != nil {
		stop()
		return tputResult{}, err
	}
	var r tputResult
	b0, t0 := sink.read.Load(), time.Now()
	if cpu != nil {
		r.cpu = -cpu()
	}
	err := sleep(ctx, dur)
	r.bytes, r.elapsed = sink.read.Load()-b0, time.Since(t0)
	if cpu != nil {
		r.cpu += cpu()
	}
	stop()
	if err != nil {
		return tputResult{}, err
	}
	if werr != nil {
		return tputResult{}, werr
	}
	if r.bytes == 0 {
		return tputResult{}, fmt.Errorf("nothing arrived at the sink through %s in %v", addr, dur)
	}
	// Bytes still on their way through the proxy must not count in the
	// next phase: wait until it has closed its connections to the sink.
	return r, sink.waitIdle(ctx, 30*time.Second)
}

// rtt measures n round trips of 64 bytes over one connection through addr
// to an echo service, after 100 unmeasured ones, and returns them sorted.
// The whole measurement must end within limit.
func rtt(ctx context.Context, addr string, n int, limit time.Duration) ([]time.Duration, error) {
	c, err := dial(addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	c.SetDeadline(time.Now().Add(limit))

	msg, got := make([]byte, 64), make([]byte, 64)
	rand.Read(msg)
	const warmup = 100
	ds := make([]time.Duration, 0, n)
	for i := range warmup + n {
		t0 := time.Now()
		if _, err := c.Write(msg); err != nil {
			return nil, fmt.Errorf("round trip %d through %s: %w", i, addr, err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			return nil, fmt.Errorf("round trip %d through %s: %w", i, addr, err)
		}
		d := time.Since(t0)
		if !bytes.Equal(got, msg) {
			return nil, fmt.Errorf("round trip %d through %s: wrong echo", i, addr)
		}
		if i >= warmup {
			ds = append(ds, d)
		}
		msg[0]++ // a stale echo would not match the next message
	}
	slices.Sort(ds)
	return ds, nil
}

// connResult is the outcome of a connection-rate phase.
type connResult struct {
	n, failed int
	elapsed   time.Duration
	firstErr  error
}

func (r connResult) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

// connRate runs workers loops of: connect to addr (an echo), send 1 byte,
// read it back, close. It stops after dur, after maxConns attempts, or
// after 100 failures.
func connRate(ctx context.Context, addr string, workers int, dur time.Duration, maxConns int) (connResult, error) {
	var (
		attempts, ok, failed atomic.Int64
		errOnce              sync.Once
		firstErr             error
		wg                   sync.WaitGroup
	)
	t0 := time.Now()
	deadline := t0.Add(dur)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(deadline) && attempts.Add(1) <= int64(maxConns) && failed.Load() < 100 {
				if err := oneConn(addr); err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	r := connResult{n: int(ok.Load()), failed: int(failed.Load()), elapsed: time.Since(t0), firstErr: firstErr}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	if r.n == 0 {
		return r, fmt.Errorf("no connection through %s succeeded: %v", addr, firstErr)
	}
	return r, nil
}

func oneConn(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	b := []byte{'x'}
	if _, err := c.Write(b); err != nil {
		return err
	}
	_, err = io.ReadFull(c, b)
	return err
}

// openIdle opens n connections through addr to an echo, checks each with a
// 1-byte echo, and returns them open. On an error it closes what it opened.
func openIdle(ctx context.Context, addr string, n int) ([]net.Conn, error) {
	const workers = 8
	var (
		mu    sync.Mutex
		conns []net.Conn
		next  atomic.Int64
		bad   atomic.Bool
		errs  = make([]error, workers)
		wg    sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && !bad.Load() && next.Add(1) <= int64(n) {
				c, err := dial(addr)
				if err == nil {
					err = echoByte(c)
					if err != nil {
						c.Close()
					}
				}
				if err != nil {
					errs[w] = err
					bad.Store(true)
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	err := errors.Join(append(errs, ctx.Err())...)
	if err != nil {
		closeAll(conns)
		return nil, fmt.Errorf("opening %d idle connections through %s (%d open): %w", n, addr, len(conns), err)
	}
	return conns, nil
}

func echoByte(c net.Conn) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	b := []byte{'i'}
	if _, err := c.Write(b); err != nil {
		return err
	}
	_, err := io.ReadFull(c, b)
	return err
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}
