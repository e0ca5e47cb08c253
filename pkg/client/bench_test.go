package client_test

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// proxied starts a server and a client in this process with one tcp
// proxy to service and returns the proxy's public address.
func proxied(b *testing.B, service int) string {
	b.Helper()
	port, remote := freePort(b), freePort(b)
	quiet := slog.New(slog.DiscardHandler)
	runServer(b, serverConfig(port), quiet)
	runClient(b, clientConfig(port, tcpProxy("bench", service, remote)), quiet)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr(remote), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("proxy did not come up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return addr(remote)
}

// BenchmarkProxyRTT64 is one 64-byte round trip through hops and hopc
// (TLS, yamux) to an echo service, all in this process.
func BenchmarkProxyRTT64(b *testing.B) {
	echoPort := echoService(b)
	c, err := net.Dial("tcp", proxied(b, echoPort))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg, got := make([]byte, 64), make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c.Write(msg)
		if _, err := io.ReadFull(c, got); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProxyThroughput moves 128 KiB writes through the proxy to a
// sink.
func BenchmarkProxyThroughput(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c)
		}
	}()
	c, err := net.Dial("tcp", proxied(b, l.Addr().(*net.TCPAddr).Port))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 128<<10)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}
