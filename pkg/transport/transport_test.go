package transport

import (
	"crypto/tls"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"
)

func handshake(t *testing.T, ccfg *tls.Config) error {
	t.Helper()
	scfg, _, err := ServerTLS("", "")
	if err != nil {
		t.Fatal(err)
	}
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	go tls.Server(s, scfg).Handshake()
	return tls.Client(c, ccfg).Handshake()
}

func TestPin(t *testing.T) {
	scfg, fp, err := ServerTLS("", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(fp) != 64 {
		t.Fatalf("fingerprint %q", fp)
	}
	// Right pin: the server's certificate.
	c, s := net.Pipe()
	go tls.Server(s, scfg).Handshake()
	ccfg, _ := ClientTLS("", "", fp)
	if err := tls.Client(c, ccfg).Handshake(); err != nil {
		t.Fatalf("right pin refused: %v", err)
	}
	c.Close()
	s.Close()
	// Another server (a new self-signed certificate) does not match.
	if err := handshake(t, ccfg); !errors.Is(err, ErrCertPin) {
		t.Fatalf("wrong certificate: %v, want ErrCertPin", err)
	}
	// No pin, no CA: the handshake works (auth is done by package auth).
	open, _ := ClientTLS("", "", "")
	if err := handshake(t, open); err != nil {
		t.Fatal(err)
	}
}

func TestBindingDiffersPerSession(t *testing.T) {
	scfg, _, _ := ServerTLS("", "")
	ccfg, _ := ClientTLS("", "", "")
	var got [][]byte
	for range 2 {
		c, s := net.Pipe()
		ts := tls.Server(s, scfg)
		go ts.Handshake()
		tc := tls.Client(c, ccfg)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		b, err := Binding(tc)
		if err != nil || len(b) != 32 {
			t.Fatalf("binding %x, %v", b, err)
		}
		got = append(got, b)
		c.Close()
		s.Close()
	}
	if string(got[0]) == string(got[1]) {
		t.Fatal("two TLS sessions share a channel binding")
	}
}

func TestCAFileErrors(t *testing.T) {
	if _, err := ClientTLS("", "/nonexistent/ca.pem", ""); err == nil {
		t.Fatal("missing CA file accepted")
	}
}

// countingConn counts Writes.
type countingConn struct {
	net.Conn
	writes int
	bytes  int
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes++
	c.bytes += len(b)
	return len(b), nil
}

func TestCoalescingConn(t *testing.T) {
	under := &countingConn{}
	c := coalescing(under).(*coalescingConn)
	c.Write([]byte("handshake")) // not held: written through
	if under.writes != 1 {
		t.Fatalf("%d writes before Hold", under.writes)
	}
	c.Hold()
	for range 4 {
		c.Write(make([]byte, 16<<10))
	}
	if under.writes != 1 {
		t.Fatal("held writes went out before Flush")
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if under.writes != 2 || under.bytes != 9+64<<10 {
		t.Fatalf("after Flush: %d writes, %d bytes; want the four held records in one write", under.writes, under.bytes)
	}
	// More than maxHold is written in pieces of at most maxHold.
	c.Hold()
	for range 20 {
		c.Write(make([]byte, 16<<10))
	}
	c.Flush()
	if under.writes != 4 {
		t.Fatalf("%d writes for 320 KiB held, want 2 more (256 KiB + 64 KiB)", under.writes)
	}
}

// TestDialLocal checks that Dial's connection leaves from the local
// address given, and that a local address that is no IP is an error.
func TestDialLocal(t *testing.T) {
	ln, err := Listen(t.Context(), "127.0.0.1:0", KeepAlive{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	local := "127.0.0.1"
	if runtime.GOOS == "linux" { // all of 127.0.0.0/8 is loopback
		local = "127.3.2.1"
	}
	c, err := Dial(t.Context(), ln.Addr().String(), local, 5*time.Second, KeepAlive{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if host, _, _ := net.SplitHostPort(s.RemoteAddr().String()); host != local {
		t.Errorf("the server sees %s, want a connection from %s", s.RemoteAddr(), local)
	}
	if _, err := Dial(t.Context(), ln.Addr().String(), "localhost", 5*time.Second, KeepAlive{}); err == nil {
		t.Error("Dial from local address \"localhost\": no error")
	}
}
