package vhost

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// backend serves h on loopback and returns a Dialer to it.
func backend(t *testing.T, h http.Handler) Dialer {
	t.Helper()
	ln := listen(t)
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}
}

// rawExchange writes req on a new connection to addr and returns the
// status line of the answer.
func rawExchange(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go io.WriteString(c, req)
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

func TestHTTPServerErrors(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs after the backends' cleanups
	s := NewHTTP(HTTPConfig{ResponseHeaderTimeout: 200 * time.Millisecond, ReadHeaderTimeout: 300 * time.Millisecond})
	release := make(chan struct{})
	slow := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	down := func(context.Context, string) (net.Conn, error) { return nil, errors.New("client gone") }
	if _, err := s.Add(Rule{Domains: []string{"slow.test"}}, &HTTPRoute{Name: "slow", Dial: slow}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(Rule{Domains: []string{"down.test"}}, &HTTPRoute{Name: "down", Dial: down}); err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	s.Serve(ln)
	addr := ln.Addr().String()

	for _, c := range []struct{ req, want string }{
		{"GET / HTTP/1.1\r\nHost: slow.test\r\n\r\n", "HTTP/1.1 504 Gateway Timeout"},
		{"GET / HTTP/1.1\r\nHost: down.test\r\n\r\n", "HTTP/1.1 502 Bad Gateway"},
		{"GET / HTTP/1.1\r\nHost: none.test\r\n\r\n", "HTTP/1.1 404 Not Found"},
		{"GET / HTTP/1.1\r\nHost: down.test\r\nX: " + strings.Repeat("y", 100<<10) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large"},
		{"BAD\r\n\r\n", "HTTP/1.1 400 Bad Request"},
	} {
		if got := rawExchange(t, addr, c.req); got != c.want {
			t.Errorf("%.40q: %q, want %q", c.req, got, c.want)
		}
	}

	// Slowloris: headers that never end are cut at ReadHeaderTimeout.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: slow.test\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("a slow request was not closed by the server: %v", err)
	}

	s.Close()
	s.Close()
}

func TestHTTPSServerClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := NewHTTPS(HTTPSConfig{HelloTimeout: time.Minute})
	ln := listen(t)
	s.Serve(ln)
	// A connection that never sends its ClientHello does not hold up Close.
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "\x16\x03\x01")
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for a connection reading its ClientHello")
	}
}

// A PerClient route carries each browser connection's requests only on
// connections to the local service dialed for that browser (whose PROXY
// protocol header names it).
func TestPerClientConnections(t *testing.T) {
	s := NewHTTP(HTTPConfig{})
	t.Cleanup(func() { s.Close() })
	local := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.RemoteAddr) }))
	var mu sync.Mutex
	dialedFor := map[string]string{} // local address of a connection to the service → the browser it was dialed for
	dial := func(ctx context.Context, src string) (net.Conn, error) {
		c, err := local(ctx, src)
		if err == nil {
			mu.Lock()
			dialedFor[c.LocalAddr().String()] = src
			mu.Unlock()
		}
		return c, err
	}
	if _, err := s.Add(Rule{Domains: []string{"pp.test"}}, &HTTPRoute{Name: "pp", Dial: dial, PerClient: true}); err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	s.Serve(ln)
	for range 3 { // browsers one after the other, three requests each
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		for range 3 {
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: pp.test\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			mu.Lock()
			for_ := dialedFor[string(b)]
			mu.Unlock()
			if for_ != c.LocalAddr().String() {
				t.Errorf("a request of browser %s went on a connection dialed for %q", c.LocalAddr(), for_)
			}
		}
		c.Close()
	}
}
