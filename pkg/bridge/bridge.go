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
)

// BufferSize is the size of the copy buffers.
const BufferSize = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, BufferSize); return &b }}

type closeWriter interface{ CloseWrite() error }

// closeWrite ends the sending side of c. Conns without CloseWrite (yamux
// streams) treat Close as a half-close: reading goes on until the peer's
// FIN.
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
	var wg sync.WaitGroup
	var abort sync.Once
	kill := func() {
		abort.Do(func() {
			a.Close()
			b.Close()
		})
	}
	pipe := func(dst, src net.Conn, n *int64) {
		defer wg.Done()
		var err error
		*n, err = Copy(dst, src)
		if err != nil {
			kill()
			return
		}
		closeWrite(dst)
	}
	wg.Add(2)
	go pipe(b, a, &aToB)
	pipe(a, b, &bToA)
	wg.Wait()
	kill()
	return aToB, bToA
}

// Copy copies src to dst with a pooled buffer until src ends. It returns
// nil on a clean EOF.
func Copy(dst io.Writer, src io.Reader) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var n int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := dst.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, werr
			}
			if nw != nr {
				return n, io.ErrShortWrite
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return n, nil
			}
			return n, rerr
		}
	}
}
