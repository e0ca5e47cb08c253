package transport

import "net"

// coalescingConn is the TCP connection under TLS. Between Hold and Flush
// it gathers what is written (the TLS records of one large write, up to
// 16 KiB each) and sends it with one write: one syscall instead of one per
// record. Outside Hold it writes through, as during the TLS handshake.
// Only one goroutine may write (the mux's send loop, through TLS).
type coalescingConn struct {
	net.Conn
	hold bool
	buf  []byte
}

// maxHold bounds what Hold gathers before writing anyway.
const maxHold = 256 << 10

func coalescing(c net.Conn) net.Conn { return &coalescingConn{Conn: c} }

// Hold starts gathering writes.
func (c *coalescingConn) Hold() { c.hold = true }

// Flush writes what was gathered and stops gathering.
func (c *coalescingConn) Flush() error {
	c.hold = false
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	if cap(c.buf) > maxHold {
		c.buf = nil // a rare oversize write: do not keep its memory
	}
	return err
}

func (c *coalescingConn) Write(b []byte) (int, error) {
	if !c.hold {
		return c.Conn.Write(b)
	}
	if len(c.buf)+len(b) > maxHold {
		if err := c.Flush(); err != nil {
			return 0, err
		}
		c.hold = true
		if len(b) > maxHold {
			return c.Conn.Write(b)
		}
	}
	c.buf = append(c.buf, b...)
	return len(b), nil
}

// coalescingListener wraps accepted connections.
type coalescingListener struct{ net.Listener }

func (l coalescingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return coalescing(c), nil
}
