package transport

import (
	"errors"
	"net"
)

// ErrNotTCP: SetKeepAlive found no TCP connection under the given one.
var ErrNotTCP = errors.New("not a TCP connection")

// SetKeepAlive changes the TCP keepalive of a live connection made by Dial
// or accepted from Listen (also through wrappers that have a NetConn
// method, as *tls.Conn does); ka.Idle 0 switches it off. heartbeat.interval
// = "auto" uses it: the kernel's keepalive follows the heartbeat, and an
// idle probe connection must send nothing while it is silent.
func SetKeepAlive(c net.Conn, ka KeepAlive) error {
	for range 8 { // wrappers nest a few deep at most
		switch x := c.(type) {
		case *net.TCPConn:
			return x.SetKeepAliveConfig(ka.config())
		case *coalescingConn:
			c = x.Conn
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return ErrNotTCP
		}
	}
	return ErrNotTCP
}
