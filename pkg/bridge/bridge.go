// Package bridge moves bytes between two connections: a proxied user
// connection and the mux stream that carries it. A clean end of one
// direction is passed on as a half-close, so protocols that shut down
// their sending side and keep reading (HTTP/1.0 clients, rsync, nc -N)
// work through hop.
package bridge

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hashicorp/yamux"
)

// BufferSize is the size of the copy buffers.
const BufferSize = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, BufferSize); return &b }}

type closeWriter interface{ CloseWrite() error }

// closeWrite ends the sending side of c. Conns without CloseWrite (raw
// yamux streams, as in pkg/xtcp) treat Close as a half-close: reading goes
// on until the peer's FIN. pkg/mux streams have CloseWrite, and their Close
// is a full close.
func closeWrite(c net.Conn) {
	if cw, ok := c.(closeWriter); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// Join copies a→b and b→a until both directions have ended, then closes
// both. An error in one direction (a reset) aborts the other at once. It
// returns the bytes moved each way.
func Join(a, b net.Conn) (aToB, bToA int64) {
	return JoinCounting(a, b, nil, nil)
}

// JoinCounting is Join that also adds the bytes to aToBCtr and bToACtr
// as they move (see StartCounting).
func JoinCounting(a, b net.Conn, aToBCtr, bToACtr *atomic.Int64) (aToB, bToA int64) {
	done := make(chan struct{})
	StartCounting(a, b, aToBCtr, bToACtr, func(x, y int64) { aToB, bToA = x, y; close(done) })
	<-done
	return aToB, bToA
}

// Start is Join in two new goroutines: it returns at once and calls done
// with the byte counts once both directions have ended and both conns are
// closed. The caller's goroutine is free to end, so an idle proxied
// connection costs the two copying goroutines' small stacks and not also
// the (often deeper) stack of the goroutine that set it up.
func Start(a, b net.Conn, done func(aToB, bToA int64)) {
	StartCounting(a, b, nil, nil, done)
}

// StartCounting is Start that also adds the bytes written each way to
// aToB and bToA (either may be nil) as they move, one atomic add per
// write, so that the counters of a long connection are current while it
// is open.
func StartCounting(a, b net.Conn, aToBCtr, bToACtr *atomic.Int64, done func(aToB, bToA int64)) {
	var wg sync.WaitGroup
	var end sync.Once
	closeBoth := func(abort bool) {
		end.Do(func() {
			closeOrReset(a, abort)
			closeOrReset(b, abort)
		})
	}
	var aToB, bToA int64
	pipe := func(dst, src net.Conn, n *int64, ctr *atomic.Int64) {
		defer wg.Done()
		var err error
		*n, err = CopyCounting(dst, src, ctr)
		if err != nil {
			closeBoth(true)
			return
		}
		closeWrite(dst)
	}
	wg.Add(2)
	go pipe(b, a, &aToB, aToBCtr)
	go func() {
		pipe(a, b, &bToA, bToACtr)
		wg.Wait()
		closeBoth(false)
		done(aToB, bToA)
	}()
}

// resetter is a conn that can end abruptly, telling its peer at once (a
// mux stream: RST).
type resetter interface{ Reset() error }

// closeOrReset closes c, or resets it when abort is set and it can be:
// when one direction of a relay failed, the peer of a mux stream must stop
// sending (else it goes on reading its local service and sending what is
// discarded until the stream close timeout).
func closeOrReset(c net.Conn, abort bool) {
	if r, ok := c.(resetter); ok && abort {
		r.Reset()
		return
	}
	c.Close()
}

// Copy copies src to dst with a pooled buffer until src ends. It returns
// nil on a clean EOF.
//
// An idle connection holds no buffer: where src can say it is readable
// without taking data (TCP sockets, yamux streams, WaitReadable), Copy
// waits for that first and takes a buffer from the pool only to move the
// bytes, so thousands of idle proxied connections cost their goroutines
// and little else.
func Copy(dst io.Writer, src io.Reader) (int64, error) {
	return CopyCounting(dst, src, nil)
}

// CopyCounting is Copy that also adds every write's byte count to ctr
// (when not nil) as it goes.
func CopyCounting(dst io.Writer, src io.Reader, ctr *atomic.Int64) (int64, error) {
	wait := waiter(src)
	var n int64
	full := false // the last read filled the buffer: more is likely waiting
	for {
		if wait != nil && !full {
			if err := wait(); err != nil {
				if errors.Is(err, io.EOF) {
					return n, nil
				}
				return n, err
			}
		}
		bp := bufPool.Get().(*[]byte)
		nr, rerr := src.Read(*bp)
		full = nr == len(*bp)
		var werr error
		if nr > 0 {
			var nw int
			nw, werr = dst.Write((*bp)[:nr])
			n += int64(nw)
			if ctr != nil {
				ctr.Add(int64(nw))
			}
			if werr == nil && nw != nr {
				werr = io.ErrShortWrite
			}
		}
		bufPool.Put(bp)
		if werr != nil {
			return n, werr
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return n, nil
			}
			return n, rerr
		}
	}
}

// ReadableWaiter is implemented by connections that can wait until data
// (or the end) is available without consuming it.
type ReadableWaiter interface {
	WaitReadable() error
}

// waiter returns how to wait until src is readable, or nil when src
// cannot tell (then Copy blocks in Read, holding a buffer).
// Waiter returns a function that blocks until src has data (or an error)
// to read, without reading any, or nil when src cannot tell. Wrappers of
// connections use it to offer WaitReadable themselves.
func Waiter(src io.Reader) func() error { return waiter(src) }

func waiter(src io.Reader) func() error {
	switch c := src.(type) {
	case ReadableWaiter:
		return c.WaitReadable
	case *yamux.Stream:
		// A yamux stream's Read with an empty buffer blocks until data or
		// the end arrives and consumes nothing.
		return func() error {
			_, err := c.Read(nil)
			return err
		}
	case syscall.Conn:
		rc, err := c.SyscallConn()
		if err != nil {
			return nil
		}
		return func() error { return waitReadable(rc) }
	}
	return nil
}

// WaitReadable blocks until the socket c has data (or an error) to report,
// without reading any, so that a reader can take a buffer only once there
// is something to put in it. Where the platform cannot peek it returns at
// once.
func WaitReadable(c syscall.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	return waitReadable(rc)
}
