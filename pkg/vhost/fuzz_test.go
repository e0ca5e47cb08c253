package vhost

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// FuzzSharedClassify: the first bytes of every connection to a shared
// bindPort come from anyone. Classify never panics, picks a queue that
// exists, and replays exactly a prefix of what was sent.
func FuzzSharedClassify(f *testing.F) {
	https := NewHTTPS(HTTPSConfig{})
	if _, err := https.Add(Rule{Domains: []string{"secure.test"}}, &TLSRoute{Name: "s"}); err != nil {
		f.Fatal(err)
	}
	sh := Shared{HTTPS: https, HTTP: true, TCPMux: true, ControlALPN: "hop"}
	var hello bytes.Buffer
	rec := &recordConn{w: &hello}
	tc := tls.Client(rec, &tls.Config{ServerName: "secure.test", InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	tc.Handshake() // fails at once: the record holds the ClientHello
	f.Add(hello.Bytes())
	for _, s := range []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "CONNECT t:22 HTTP/1.1\r\n\r\n", "\x00\x01\x00\x00\x21\x12\xa4\x42", "\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", "G"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &helloConn{r: bytes.NewReader(in)}
		q, prefix, err := sh.Classify(c, time.Now().Add(time.Second))
		if err != nil {
			return
		}
		if q < 0 || q >= NumQueues {
			t.Fatalf("queue %d", q)
		}
		if !bytes.HasPrefix(in, prefix) {
			t.Fatalf("replay %q is not a prefix of %q", prefix, in)
		}
	})
}

// recordConn is a net.Conn that records what is written and reads EOF.
type recordConn struct {
	helloConn
	w io.Writer
}

func (c *recordConn) Read([]byte) (int, error)    { return 0, io.EOF }
func (c *recordConn) Write(b []byte) (int, error) { return c.w.Write(b) }

// fuzzHTTP is one vhost HTTP server for FuzzHTTPHead, on loopback, with a
// route to a backend that answers every request.
var fuzzHTTP = sync.OnceValues(func() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	back, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go (&http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		io.WriteString(w, "ok")
	})}).Serve(back)
	s := NewHTTP(HTTPConfig{ReadHeaderTimeout: time.Second, ResponseHeaderTimeout: time.Second})
	dial := func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", back.Addr().String())
	}
	if _, err := s.Add(Rule{Domains: []string{"a.test"}}, &HTTPRoute{Name: "a", Dial: dial, User: "u", Password: "p"}); err != nil {
		return "", err
	}
	if _, err := s.Add(Rule{Domains: []string{"b.test"}, Locations: []string{"/x"}}, &HTTPRoute{Name: "b", Dial: dial, HostRewrite: "in"}); err != nil {
		return "", err
	}
	s.Serve(ln)
	return ln.Addr().String(), nil
})

// FuzzHTTPHead: what a browser sends to the vhost HTTP port comes from
// anyone. For any bytes the server answers with an HTTP status line or
// closes the connection, within its timeouts, and stays up.
func FuzzHTTPHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a.test\r\nAuthorization: Basic dTpw\r\n\r\n",
		"GET /x/y HTTP/1.1\r\nHost: b.test\r\n\r\nGET / HTTP/1.1\r\nHost: none\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: b.test\r\nContent-Length: 3\r\n\r\nabc",
		"POST /x HTTP/1.1\r\nHost: b.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: b.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"BAD\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		addr, err := fuzzHTTP()
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write(in)
		c.(*net.TCPConn).CloseWrite()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil && line == "" {
			return // closed without an answer: a request that never ended
		}
		if !strings.HasPrefix(line, "HTTP/1.1 ") && !strings.HasPrefix(line, "HTTP/1.0 ") {
			t.Fatalf("answer %q to %q", line, in)
		}
		// Still up for the next one.
		if got := rawGet(t, addr); !strings.HasPrefix(got, "HTTP/1.1 404") {
			t.Fatalf("after %q the server answers %q", in, got)
		}
	})
}

func rawGet(t *testing.T, addr string) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: nobody.test\r\n\r\n")
	line, _ := bufio.NewReader(c).ReadString('\n')
	return line
}
