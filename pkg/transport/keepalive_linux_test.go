package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// SetKeepAlive reaches the TCP connection under the wrappers and changes
// its keepalive; on something that is not TCP it says so.
func TestSetKeepAlive(t *testing.T) {
	ln, err := Listen(context.Background(), "127.0.0.1:0", KeepAlive{Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := Dial(context.Background(), ln.Addr().String(), "", time.Second, KeepAlive{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := <-accepted
	defer sc.Close()
	idle := func(conn net.Conn) int {
		t.Helper()
		var tc *net.TCPConn
		switch x := conn.(type) {
		case *coalescingConn:
			tc = x.Conn.(*net.TCPConn)
		case *tls.Conn:
			tc = x.NetConn().(*coalescingConn).Conn.(*net.TCPConn)
		}
		rc, err := tc.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var v int
		var serr error
		rc.Control(func(fd uintptr) { v, serr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE) })
		if serr != nil {
			t.Fatal(serr)
		}
		return v
	}
	if got := idle(sc); got != 15 {
		t.Fatalf("accepted conn keepalive idle %d s, want 15", got)
	}
	if err := SetKeepAlive(tls.Server(sc, &tls.Config{}), KeepAlive{Idle: 40 * time.Second, Interval: 5 * time.Second, Count: 3}); err != nil {
		t.Fatal(err)
	}
	if got := idle(sc); got != 40 {
		t.Fatalf("after SetKeepAlive through TLS: idle %d s, want 40", got)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if err := SetKeepAlive(a, KeepAlive{}); !errors.Is(err, ErrNotTCP) {
		t.Fatalf("on a pipe: %v, want ErrNotTCP", err)
	}
}
