package bridge

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() { c, _ := l.Accept(); ch <- c }()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return c, <-ch
}

// user ⇄ (a | Join | b) ⇄ service
func TestJoinHalfClose(t *testing.T) {
	user, a := tcpPair(t)
	b, service := tcpPair(t)
	done := make(chan [2]int64, 1)
	go func() {
		x, y := Join(a, b)
		done <- [2]int64{x, y}
	}()
	payload := bytes.Repeat([]byte("x"), 300<<10)
	go func() {
		user.Write(payload)
		user.(*net.TCPConn).CloseWrite() // half-close: the answer must still come back
	}()
	got, err := io.ReadAll(service)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("service read %d bytes, %v", len(got), err)
	}
	service.Write([]byte("answer"))
	service.Close()
	ans, err := io.ReadAll(user)
	if err != nil || string(ans) != "answer" {
		t.Fatalf("user read %q, %v", ans, err)
	}
	select {
	case n := <-done:
		if n[0] != int64(len(payload)) || n[1] != 6 {
			t.Fatalf("counts %v", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Join did not return after both directions ended")
	}
	user.Close()
}

func TestJoinResetAbortsOtherDirection(t *testing.T) {
	user, a := tcpPair(t)
	b, service := tcpPair(t)
	done := make(chan struct{})
	go func() { Join(a, b); close(done) }()
	user.(*net.TCPConn).SetLinger(0)
	user.Close() // reset
	service.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(service); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the service side stayed open after the user reset")
		}
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Join hung after a reset")
	}
	service.Close()
}
