package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/config"
)

// runServer starts a server on 127.0.0.1 with kernel-chosen ports; edit
// the config in cfgFn.
func runServer(t *testing.T, cfgFn func(*config.ServerConfig)) *Server {
	t.Helper()
	cfg := config.DefaultServer()
	cfg.Auth.Token = "test-token-for-limits-0123456789"
	cfg.BindAddr = "127.0.0.1"
	if cfgFn != nil {
		cfgFn(&cfg)
	}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := New(&cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	s.cfg.BindPort = 0 // after Validate: let the kernel pick
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

func poll(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dialFrom connects to the server from the loopback address src.
func dialFrom(t *testing.T, s *Server, src string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refusedAtOnce reports whether the server closed c without waiting for
// the handshake timeout.
func refusedAtOnce(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

// TestHandshakeGate: connections that never speak TLS hold a handshake
// slot; over limits.maxHandshakesPerIP from one IP and over
// limits.maxHandshakes in all, a new connection is closed at once, before
// TLS, and others' slots are unaffected.
func TestHandshakeGate(t *testing.T) {
	s := runServer(t, func(c *config.ServerConfig) {
		c.Limits.MaxHandshakes = 3
		c.Limits.MaxHandshakesPerIP = 2
		c.Transport.HandshakeTimeout = config.Dur(30 * time.Second)
	})
	var held []net.Conn
	for range 2 {
		held = append(held, dialFrom(t, s, "127.0.0.1"))
	}
	poll(t, 5*time.Second, "two handshakes in progress", func() bool { return s.HandshakeStats().InProgress == 2 })
	if c := dialFrom(t, s, "127.0.0.1"); !refusedAtOnce(c) {
		t.Fatal("third silent connection from one IP was not refused at once")
	}
	held = append(held, dialFrom(t, s, "127.0.0.2"))
	poll(t, 5*time.Second, "third handshake (other IP) in progress", func() bool { return s.HandshakeStats().InProgress == 3 })
	if c := dialFrom(t, s, "127.0.0.3"); !refusedAtOnce(c) {
		t.Fatal("a connection over maxHandshakes was not refused at once")
	}
	st := s.HandshakeStats()
	if st.RefusedPerIP != 1 || st.RefusedTotal != 1 {
		t.Fatalf("stats %+v", st)
	}
	for _, c := range held {
		c.Close()
	}
	poll(t, 5*time.Second, "slots not released when the peers left", func() bool { return s.HandshakeStats().InProgress == 0 })
	// A slot freed is usable again.
	dialFrom(t, s, "127.0.0.1")
	poll(t, 5*time.Second, "slot reuse", func() bool { return s.HandshakeStats().InProgress == 1 })
}
