package drain

import (
	"net"
	"testing"
	"time"
)

func TestWaitIdleAndCloseAll(t *testing.T) {
	var s Set
	if !s.WaitIdle(0) {
		t.Fatal("an empty set is not idle")
	}
	a, b := net.Pipe()
	defer b.Close()
	s.Add(a)
	if s.WaitIdle(20 * time.Millisecond) {
		t.Fatal("WaitIdle returned true with an open connection")
	}
	go func() { time.Sleep(10 * time.Millisecond); s.Remove(a) }()
	if !s.WaitIdle(5 * time.Second) {
		t.Fatal("WaitIdle missed the removal")
	}
	c, d := net.Pipe()
	s.Add(c)
	s.CloseAll()
	if _, err := d.Read(make([]byte, 1)); err == nil {
		t.Fatal("CloseAll left the connection open")
	}
	if s.Count() != 1 {
		t.Fatalf("Count = %d; CloseAll closes but the owner removes", s.Count())
	}
}

// TestCloseRefusesLaterAdds: after Close no connection gets in, so none
// outlives it.
func TestCloseRefusesLaterAdds(t *testing.T) {
	var s Set
	a, b := net.Pipe()
	defer b.Close()
	if !s.Add(a) {
		t.Fatal("Add refused before Close")
	}
	s.Close()
	if _, err := b.Read(make([]byte, 1)); err == nil {
		t.Fatal("Close left the connection open")
	}
	c, d := net.Pipe()
	defer c.Close()
	defer d.Close()
	if s.Add(c) {
		t.Fatal("Add accepted a connection after Close")
	}
	s.Close() // twice is fine
}
