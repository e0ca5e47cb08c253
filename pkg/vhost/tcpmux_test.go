package vhost

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/metrics"
	"go.uber.org/goleak"
)

var connectCases = []struct {
	name, head string
	want       ConnectRequest
	n          int // head length; 0 with err
	err        error
}{
	{name: "plain", head: "CONNECT tunnel1:22 HTTP/1.1\r\nHost: tunnel1:22\r\n\r\n", want: ConnectRequest{Host: "tunnel1", Target: "tunnel1:22"}, n: 49},
	{name: "auth and bytes after", head: "CONNECT A.Example.COM.:443 HTTP/1.1\r\nProxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("u:p:w")) + "\r\n\r\nSSH-2.0",
		want: ConnectRequest{Host: "a.example.com", Target: "A.Example.COM.:443", User: "u", Password: "p:w", HasAuth: true}, n: 76},
	{name: "bare LF", head: "CONNECT t:1 HTTP/1.0\n\n", want: ConnectRequest{Host: "t", Target: "t:1"}, n: 22},
	{name: "ipv6", head: "CONNECT [::1]:80 HTTP/1.1\r\n\r\n", want: ConnectRequest{Host: "::1", Target: "[::1]:80"}, n: 29},
	{name: "other auth scheme", head: "CONNECT t:1 HTTP/1.1\r\nProxy-Authorization: Bearer x\r\n\r\n", want: ConnectRequest{Host: "t", Target: "t:1"}, n: 55},
	{name: "GET", head: "GET / HTTP/1.1\r\nHost: t\r\n\r\n", err: ErrConnectMethod},
	{name: "no port", head: "CONNECT tunnel1 HTTP/1.1\r\n\r\n", err: ErrConnectMalformed},
	{name: "URL target", head: "CONNECT http://t:1/ HTTP/1.1\r\n\r\n", err: ErrConnectMalformed},
	{name: "bad version", head: "CONNECT t:1 HTTP/2\r\n\r\n", err: ErrConnectMalformed},
	{name: "bad version before the end", head: "CONNECT t:1 SPDY\r\nX: 1\r\n", err: ErrConnectMalformed},
	{name: "junk", head: "\x00\x01\x02 hello", err: ErrConnectMalformed},
	{name: "long method", head: strings.Repeat("A", 40), err: ErrConnectMalformed},
	{name: "header without colon", head: "CONNECT t:1 HTTP/1.1\r\nbogus\r\n\r\n", err: ErrConnectMalformed},
	{name: "control char in header", head: "CONNECT t:1 HTTP/1.1\r\nX: a\x00b\r\n\r\n", err: ErrConnectMalformed},
	{name: "too large", head: "CONNECT t:1 HTTP/1.1\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("a", 100)+"\r\n", 200), err: ErrConnectTooLarge},
	{name: "short", head: "CONNECT t:1 HTTP/1.1\r\nHost: t", err: errConnectShort},
}

func TestParseConnect(t *testing.T) {
	for _, c := range connectCases {
		t.Run(c.name, func(t *testing.T) {
			req, n, err := ParseConnect([]byte(c.head))
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("err %v, want %v", err, c.err)
				}
				return
			}
			if err != nil || req != c.want || n != c.n {
				t.Fatalf("got %+v, %d, %v; want %+v, %d", req, n, err, c.want, c.n)
			}
		})
	}
}

func FuzzParseConnect(f *testing.F) {
	for _, c := range connectCases {
		f.Add([]byte(c.head))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, n, err := ParseConnect(b)
		if err != nil {
			if !errors.Is(err, ErrConnectMalformed) && !errors.Is(err, ErrConnectMethod) && !errors.Is(err, ErrConnectTooLarge) && !errors.Is(err, errConnectShort) {
				t.Fatalf("error %v is none of the documented ones", err)
			}
			if errors.Is(err, errConnectShort) && len(b) >= MaxConnectHeadBytes {
				t.Fatalf("short at %d bytes, beyond the limit", len(b))
			}
			return
		}
		if n <= 0 || n > len(b) || n > MaxConnectHeadBytes || req.Host == "" || !strings.HasPrefix(string(b), "CONNECT ") {
			t.Fatalf("accepted %q: %+v, n %d", b, req, n)
		}
		// The head parsed is a prefix: the same bytes with more after
		// them parse the same.
		req2, n2, err := ParseConnect(append(b[:n:n], "trailing"...))
		if err != nil || req2 != req || n2 != n {
			t.Fatalf("with trailing bytes: %+v %d %v, want %+v %d", req2, n2, err, req, n)
		}
	})
}

// echoDialer returns a Dialer whose streams echo what they receive, after
// sending hello, and a channel of what each stream received first.
func echoDialer(t *testing.T, hello string) Dialer {
	t.Helper()
	ln := listen(t)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, hello)
				io.Copy(c, c)
			}()
		}
	}()
	return func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}
}

func connectTo(t *testing.T, addr, head string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	line, _ := br.ReadString('\n')
	return c, br, strings.TrimSpace(line)
}

func TestTCPMuxServer(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	s := NewTCPMux(TCPMuxConfig{HeaderTimeout: 300 * time.Millisecond})
	down := func(context.Context, string) (net.Conn, error) { return nil, errors.New("client gone") }
	if _, err := s.Add(Rule{Domains: []string{"open.test"}}, &TCPMuxRoute{Name: "open", Dial: echoDialer(t, "hi ")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(Rule{Domains: []string{"auth.test"}}, &TCPMuxRoute{Name: "auth", Dial: echoDialer(t, "secret "), User: "u", Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(Rule{Domains: []string{"auth.test"}, User: "bob"}, &TCPMuxRoute{Name: "bob", Dial: echoDialer(t, "bob ")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(Rule{Domains: []string{"down.test"}}, &TCPMuxRoute{Name: "down", Dial: down}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(Rule{Domains: []string{"open.test"}}, &TCPMuxRoute{Name: "again"}); !errors.Is(err, ErrTaken) {
		t.Fatalf("second route for open.test: %v, want ErrTaken", err)
	}
	ln := listen(t)
	s.Serve(ln)
	defer s.Close()
	addr := ln.Addr().String()
	basic := func(u, p string) string { return base64.StdEncoding.EncodeToString([]byte(u + ":" + p)) }

	for _, c := range []struct{ name, head, status, greeting string }{
		{"open", "CONNECT open.test:22 HTTP/1.1\r\nHost: open.test:22\r\n\r\n", "HTTP/1.1 200 Connection established", "hi "},
		{"auth", "CONNECT auth.test:22 HTTP/1.1\r\nProxy-Authorization: Basic " + basic("u", "pw") + "\r\n\r\n", "HTTP/1.1 200 Connection established", "secret "},
		{"wrong password", "CONNECT auth.test:22 HTTP/1.1\r\nProxy-Authorization: Basic " + basic("u", "no") + "\r\n\r\n", "HTTP/1.1 407 Proxy Authentication Required", ""},
		{"no credentials", "CONNECT auth.test:22 HTTP/1.1\r\n\r\n", "HTTP/1.1 407 Proxy Authentication Required", ""},
		{"routeByHTTPUser", "CONNECT auth.test:22 HTTP/1.1\r\nProxy-Authorization: Basic " + basic("bob", "any") + "\r\n\r\n", "HTTP/1.1 200 Connection established", "bob "},
		{"unknown host", "CONNECT none.test:22 HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found", ""},
		{"client down", "CONNECT down.test:22 HTTP/1.1\r\n\r\n", "HTTP/1.1 502 Bad Gateway", ""},
		{"GET", "GET / HTTP/1.1\r\nHost: open.test\r\n\r\n", "HTTP/1.1 405 Method Not Allowed", ""},
		{"junk", "\x16\x03\x01\x02\x00 junk\r\n\r\n", "HTTP/1.1 400 Bad Request", ""},
		{"oversize", "CONNECT open.test:22 HTTP/1.1\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("a", 1000)+"\r\n", 20), "HTTP/1.1 431 Request Header Fields Too Large", ""},
		{"slowloris", "CONNECT open.test:22 HTTP/1.1\r\nX-Slow: 1\r\n", "HTTP/1.1 408 Request Timeout", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, br, status := connectTo(t, addr, c.head)
			if status != c.status {
				t.Fatalf("status %q, want %q", status, c.status)
			}
			if c.greeting == "" {
				return
			}
			if blank, _ := br.ReadString('\n'); blank != "\r\n" {
				t.Fatalf("after the status: %q, want the blank line", blank)
			}
			io.WriteString(conn, "ping")
			got := make([]byte, len(c.greeting)+4)
			if _, err := io.ReadFull(br, got); err != nil || string(got) != c.greeting+"ping" {
				t.Fatalf("tunnel read %q, %v; want %q", got, err, c.greeting+"ping")
			}
		})
	}
}

// With Passthrough the local service gets the CONNECT request itself,
// and hops writes no response of its own.
func TestTCPMuxPassthrough(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	s := NewTCPMux(TCPMuxConfig{Passthrough: true})
	if _, err := s.Add(Rule{Domains: []string{"t.test"}}, &TCPMuxRoute{Name: "t", Dial: echoDialer(t, "")}); err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	s.Serve(ln)
	defer s.Close()
	head := "CONNECT t.test:1 HTTP/1.1\r\nHost: t.test:1\r\n\r\n"
	_, _, line := connectTo(t, ln.Addr().String(), head+"after")
	if line != "CONNECT t.test:1 HTTP/1.1" {
		t.Fatalf("the echo of the local service starts %q, want the CONNECT request", line)
	}
}

// Close ends a connection whose head is still being read at once, and
// the tunnels the server keeps, and waits for its goroutines.
func TestTCPMuxClose(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	s := NewTCPMux(TCPMuxConfig{HeaderTimeout: time.Minute})
	if _, err := s.Add(Rule{Domains: []string{"t.test"}}, &TCPMuxRoute{Name: "t", Dial: echoDialer(t, "x")}); err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	s.Serve(ln)
	slow, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	io.WriteString(slow, "CONNECT t.test:1 HTTP/1.1\r\n")
	tunnel, br, status := connectTo(t, ln.Addr().String(), "CONNECT t.test:1 HTTP/1.1\r\n\r\n")
	if status != "HTTP/1.1 200 Connection established" {
		t.Fatalf("status %q", status)
	}
	br.ReadString('\n')
	if b, err := br.ReadByte(); err != nil || b != 'x' {
		t.Fatalf("tunnel: %q %v", b, err)
	}
	// The slow one is in its head by now or soon: Close must not wait
	// for its minute.
	done := make(chan struct{})
	go func() { s.Close(); s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return")
	}
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	// Closed either way: a FIN, or a reset when the server closed it with
	// some of its head still unread (a loaded machine), which Linux answers
	// with RST.
	if _, err := io.ReadAll(slow); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("slow connection: %v, want closed", err)
	}
	tunnel.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(br); err != nil {
		t.Fatalf("tunnel: %v, want closed", err)
	}
}

// wrapped counts the bytes written through it.
type wrapped struct {
	net.Conn
	n *atomic.Int64
}

func (w wrapped) Write(b []byte) (int, error) {
	n, err := w.Conn.Write(b)
	w.n.Add(int64(n))
	return n, err
}

// Wrap (a bandwidth limit in hops) is applied to both sides of a tunnel,
// and Conns counts it.
func TestTCPMuxWrapAndCount(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	s := NewTCPMux(TCPMuxConfig{})
	var toUser, toStream atomic.Int64
	conns := new(metrics.Conns)
	rt := &TCPMuxRoute{Name: "t", Dial: echoDialer(t, "hello"), Conns: conns,
		Wrap: func(u, st net.Conn) (net.Conn, net.Conn) { return wrapped{u, &toUser}, wrapped{st, &toStream} }}
	if _, err := s.Add(Rule{Domains: []string{"t.test"}}, rt); err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	s.Serve(ln)
	defer s.Close()
	c, br, status := connectTo(t, ln.Addr().String(), "CONNECT t.test:1 HTTP/1.1\r\n\r\nearly")
	if status != "HTTP/1.1 200 Connection established" {
		t.Fatalf("status %q", status)
	}
	br.ReadString('\n')
	got := make([]byte, len("helloearly"))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "helloearly" {
		t.Fatalf("tunnel read %q %v", got, err)
	}
	io.WriteString(c, "x")
	if b, err := br.ReadByte(); err != nil || b != 'x' {
		t.Fatalf("echo of x: %q %v", b, err)
	}
	c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for conns.Open.Load() != 0 || toUser.Load() < int64(len(got)) {
		if time.Now().After(deadline) {
			t.Fatalf("open %d, bytes to the user through Wrap %d", conns.Open.Load(), toUser.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// "early" went to the stream before the join, not through Wrap.
	if conns.Total.Load() != 1 || conns.In.Load() < 6 || toStream.Load() != 1 {
		t.Fatalf("total %d, in %d, through Wrap to the stream %d", conns.Total.Load(), conns.In.Load(), toStream.Load())
	}
}

// tcpmux proxies of one load-balancing group share a host, and the
// tunnels go to the members in turn; another key is refused.
func TestTCPMuxGroup(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	s := NewTCPMux(TCPMuxConfig{})
	rule := Rule{Domains: []string{"g.test"}, Group: "g", GroupKey: "k"}
	a, err := s.Add(rule, &TCPMuxRoute{Name: "a", Dial: echoDialer(t, "a")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(rule, &TCPMuxRoute{Name: "b", Dial: echoDialer(t, "b")}); err != nil {
		t.Fatal(err)
	}
	bad := rule
	bad.GroupKey = "other"
	if _, err := s.Add(bad, &TCPMuxRoute{Name: "c"}); !errors.Is(err, ErrGroupKey) {
		t.Fatalf("another key: %v, want ErrGroupKey", err)
	}
	if _, err := s.Add(Rule{Domains: []string{"g.test"}}, &TCPMuxRoute{Name: "d"}); !errors.Is(err, ErrTaken) {
		t.Fatalf("outside the group: %v, want ErrTaken", err)
	}
	ln := listen(t)
	s.Serve(ln)
	defer s.Close()
	first := func() string {
		_, br, status := connectTo(t, ln.Addr().String(), "CONNECT g.test:1 HTTP/1.1\r\n\r\n")
		if status != "HTTP/1.1 200 Connection established" {
			t.Fatalf("status %q", status)
		}
		br.ReadString('\n')
		b, err := br.ReadByte()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	seen := map[string]int{}
	for i := 0; i < 4; i++ {
		seen[first()]++
	}
	if seen["a"] != 2 || seen["b"] != 2 {
		t.Fatalf("members answered %v, want 2 each", seen)
	}
	s.Remove(a)
	for i := 0; i < 2; i++ {
		if m := first(); m != "b" {
			t.Fatalf("after a left: %q answered", m)
		}
	}
}
