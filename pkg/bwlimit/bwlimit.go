// Package bwlimit caps the bandwidth of a proxy, as frp's
// transport.bandwidthLimit: two token buckets (golang.org/x/time/rate),
// one per direction, shared by all the proxy's connections together.
// Writes wait for tokens, so the copy of each direction of a connection
// slows to the rate the bucket allows and TCP's flow control pushes back
// on the sender.
package bwlimit

import (
	"context"
	"net"
	"sync"

	"golang.org/x/time/rate"

	"github.com/hopproxy/hop/pkg/bridge"
)

// MaxBurst caps a bucket's size: the bytes that may pass at once after an
// idle period. Small against a second of any useful rate, so the rate
// over a few seconds is the limit within a few per cent.
const MaxBurst = 64 << 10

// Limit is a proxy's pair of buckets. A nil *Limit limits nothing.
type Limit struct {
	rate int64
	in   *rate.Limiter // toward the local service (user → service)
	out  *rate.Limiter // from the local service (service → user)
}

// New returns the buckets of a limit of bytesPerSecond in each direction,
// or nil for bytesPerSecond <= 0 (no limit).
func New(bytesPerSecond int64) *Limit {
	if bytesPerSecond <= 0 {
		return nil
	}
	burst := int(min(bytesPerSecond, MaxBurst))
	return &Limit{
		rate: bytesPerSecond,
		in:   rate.NewLimiter(rate.Limit(bytesPerSecond), burst),
		out:  rate.NewLimiter(rate.Limit(bytesPerSecond), burst),
	}
}

// Rate returns the limit in bytes per second, 0 for a nil Limit.
func (l *Limit) Rate() int64 {
	if l == nil {
		return 0
	}
	return l.rate
}

// Direction names a bucket.
type Direction int

// Directions of a proxy's traffic.
const (
	In  Direction = iota // from the user toward the local service
	Out                  // from the local service toward the user
)

func (l *Limit) bucket(d Direction) *rate.Limiter {
	if d == In {
		return l.in
	}
	return l.out
}

// Wait blocks until n bytes may pass in direction d, or ctx ends. A nil
// Limit returns at once.
func (l *Limit) Wait(ctx context.Context, d Direction, n int) error {
	if l == nil {
		return nil
	}
	b := l.bucket(d)
	for n > 0 {
		k := min(n, b.Burst())
		if err := b.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// Conn returns c with its writes limited by direction d's bucket: pass the
// conn the bytes of direction d are written to. A nil Limit returns c.
// Close on the result also ends a write waiting for tokens.
func (l *Limit) Conn(c net.Conn, d Direction) net.Conn {
	if l == nil {
		return c
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{Conn: c, l: l, d: d, ctx: ctx, cancel: cancel, wait: bridge.Waiter(c)}
}

type conn struct {
	net.Conn
	l      *Limit
	d      Direction
	ctx    context.Context
	cancel context.CancelFunc
	wait   func() error
	once   sync.Once
}

func (c *conn) Write(p []byte) (int, error) {
	burst := c.l.bucket(c.d).Burst()
	var n int
	for len(p) > 0 {
		k := min(len(p), burst)
		if err := c.l.Wait(c.ctx, c.d, k); err != nil {
			return n, net.ErrClosed
		}
		w, err := c.Conn.Write(p[:k])
		n += w
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// Close ends a waiting Write and closes the conn.
func (c *conn) Close() error {
	c.once.Do(c.cancel)
	return c.Conn.Close()
}

// CloseWrite half-closes the conn when it can, else closes it (as
// package bridge does with conns that cannot half-close).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// WaitReadable lets package bridge wait for data without a buffer, as it
// does on the conn inside.
func (c *conn) WaitReadable() error {
	if c.wait == nil {
		return nil
	}
	return c.wait()
}
