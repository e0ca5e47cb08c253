package bridge

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"sync/atomic"
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

// Idle joined connections hold no copy buffers: 100 idle joins (200
// copying goroutines) must cost far less heap than one 64 KiB buffer per
// goroutine would.
func TestIdleJoinsHoldNoBuffers(t *testing.T) {
	const joins = 100
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	done := make(chan struct{}, joins)
	for range joins {
		user, a := tcpPair(t)
		b, service := tcpPair(t)
		conns = append(conns, user, a, b, service)
		go func() { Join(a, b); done <- struct{}{} }()
	}
	// Let every goroutine reach its wait, then measure.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() < 2*joins && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	if limit := int64(2 * joins * BufferSize / 4); grew > limit {
		t.Fatalf("heap grew %d KiB for %d idle joins; buffers held while idle would be %d KiB", grew>>10, joins, 2*joins*BufferSize>>10)
	}
	t.Logf("heap grew %d KiB for %d idle joins", grew>>10, joins)
	// Data still flows after the idle wait.
	conns[0].Write([]byte("x"))
	conns[3].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(conns[3], make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
}

// The counters of StartCounting move while the connection is open, and
// end equal to the totals done reports.
func TestStartCounting(t *testing.T) {
	user, a := tcpPair(t)
	b, service := tcpPair(t)
	var up, down atomic.Int64
	done := make(chan [2]int64, 1)
	StartCounting(a, b, &up, &down, func(x, y int64) { done <- [2]int64{x, y} })
	payload := bytes.Repeat([]byte("y"), 200<<10)
	go user.Write(payload)
	if _, err := io.ReadFull(service, make([]byte, len(payload))); err != nil {
		t.Fatal(err)
	}
	// A write is counted right after it returns, so the reader can have
	// the bytes a moment before the count: wait for it, bounded.
	waitCount := func(what string, c *atomic.Int64, want int64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); c.Load() != want; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s counter = %d while open, want %d", what, c.Load(), want)
			}
		}
	}
	waitCount("up", &up, int64(len(payload)))
	service.Write([]byte("answer"))
	if _, err := io.ReadFull(user, make([]byte, 6)); err != nil {
		t.Fatal(err)
	}
	waitCount("down", &down, 6)
	user.Close()
	service.Close()
	var got [2]int64
	select {
	case got = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("StartCounting did not finish after both ends closed")
	}
	if got[0] != up.Load() || got[1] != down.Load() {
		t.Errorf("done(%d, %d), counters (%d, %d): want equal", got[0], got[1], up.Load(), down.Load())
	}
}
