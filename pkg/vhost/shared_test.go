package vhost

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

// classifyBytes runs sh.Classify on a connection whose peer sends what
// send writes, and returns the queue and the bytes read.
func classifyBytes(t *testing.T, sh Shared, send func(net.Conn)) (int, []byte, error) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		send(b)
	}()
	deadline := time.Now().Add(500 * time.Millisecond)
	a.SetReadDeadline(deadline)
	q, prefix, err := sh.Classify(a, deadline)
	a.Close()
	b.Close()
	<-done
	return q, prefix, err
}

func write(s string) func(net.Conn) {
	return func(c net.Conn) { io.WriteString(c, s) }
}

func hello(name string, alpn ...string) func(net.Conn) {
	return func(c net.Conn) {
		tc := tls.Client(c, &tls.Config{ServerName: name, InsecureSkipVerify: true, NextProtos: alpn})
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		tc.Handshake() // fails when the test closes the pipe
	}
}

func TestSharedClassify(t *testing.T) {
	https := NewHTTPS(HTTPSConfig{})
	if _, err := https.Add(Rule{Domains: []string{"secure.test", "*.apps.test"}}, &TLSRoute{Name: "s"}); err != nil {
		t.Fatal(err)
	}
	all := Shared{HTTPS: https, HTTP: true, TCPMux: true, ControlALPN: "hop"}
	for _, c := range []struct {
		name    string
		sh      Shared
		send    func(net.Conn)
		want    int
		wantErr bool
	}{
		{"TLS for an https proxy", all, hello("secure.test"), QueueHTTPS, false},
		{"TLS for a wildcard", all, hello("x.apps.test"), QueueHTTPS, false},
		{"TLS for another name (hopc)", all, hello("hops.example.com"), QueueControl, false},
		{"TLS for an https proxy's name with the control ALPN (hopc)", all, hello("x.apps.test", "h2", "hop"), QueueControl, false},
		{"TLS for an https proxy with other ALPN", all, hello("secure.test", "h2", "http/1.1"), QueueHTTPS, false},
		{"control ALPN not set", Shared{HTTPS: https}, hello("secure.test", "hop"), QueueHTTPS, false},
		{"TLS without a name (hopc to an IP)", all, hello(""), QueueControl, false},
		{"TLS without https on the port", Shared{HTTP: true}, hello("secure.test"), QueueControl, false},
		{"malformed TLS", all, write("\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00"), QueueControl, false},
		{"STUN over TCP", all, write("\x00\x01\x00\x00\x21\x12\xa4\x42"), QueueControl, false},
		{"HTTP GET", all, write("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), QueueHTTP, false},
		{"CONNECT", all, write("CONNECT t:22 HTTP/1.1\r\n\r\n"), QueueTCPMux, false},
		{"CONNECT without tcpmux", Shared{HTTP: true}, write("CONNECT t:22 HTTP/1.1\r\n\r\n"), QueueHTTP, false},
		{"GET without http", Shared{TCPMux: true}, write("GET / HTTP/1.1\r\n\r\n"), QueueTCPMux, false},
		{"plaintext with neither", Shared{HTTPS: https}, write("GET / HTTP/1.1\r\n\r\n"), QueueControl, false},
		{"slow method", all, write("GE"), 0, true},
		{"nothing", all, func(net.Conn) {}, 0, true},
		{"slow ClientHello", all, write("\x16\x03\x01\x02\x00\x01"), 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, prefix, err := classifyBytes(t, c.sh, c.send)
			if c.wantErr {
				if err == nil {
					t.Fatalf("queue %d, want an error", q)
				}
				return
			}
			if err != nil || q != c.want {
				t.Fatalf("queue %d, %v; want %d", q, err, c.want)
			}
			if len(prefix) == 0 {
				t.Fatal("no bytes to replay")
			}
		})
	}
	// The bytes to replay are exactly what was read, from the first.
	_, prefix, _ := classifyBytes(t, all, write("CONNECT t:22 HTTP/1.1\r\n\r\n"))
	if !bytes.HasPrefix([]byte("CONNECT t:22 HTTP/1.1\r\n\r\n"), prefix) || len(prefix) < len("CONNECT ") {
		t.Fatalf("prefix %q", prefix)
	}
}
