package e2e

import (
	"fmt"
	"io"
	"net"
	"sort"
	"testing"
	"time"

	"github.com/hopproxy/hop/tests/netlab"
)

// BenchmarkP2P measures the P2P path in the netlab (root): throughput and
// 64-byte round trips through xtcp over a direct path and through the relay
// (an stcp visitor of the same owner: the path a failed punch falls back
// to), and the time from a fresh visitor's first connection to its direct
// path. Run: go test -run '^$' -bench P2P -benchtime 3x ./tests/e2e
func BenchmarkP2P(b *testing.B) {
	lab := netlab.New(b)
	l := &p2pLab{lab: lab, hosts: map[string]*netlab.Host{}, nats: map[string]*netlab.NAT{}, clients: map[string]*proc{}}
	wan := lab.Network("wan", "198.51.100.0/24")
	l.srvHost = lab.Host("srv")
	l.srvHost.Attach(wan, "198.51.100.10")
	for i, side := range []string{"oa", "vb"} {
		lan := lab.Network("l"+side, fmt.Sprintf("10.%d.0.0/24", i+1))
		lab.NAT("n"+side, wan, fmt.Sprintf("198.51.100.%d", 21+i), lan, fmt.Sprintf("10.%d.0.1", i+1), netlab.NATConfig{Mode: netlab.PortPreserving})
		h := lab.Host(side)
		h.Attach(lan, fmt.Sprintf("10.%d.0.10", i+1))
		h.DefaultRoute(fmt.Sprintf("10.%d.0.1", i+1))
		l.hosts[side] = h
	}
	l.srv = startIn(b, l.srvHost, "hops", "bindAddr = \"198.51.100.10\"\nbindPort = 7000\nauth.token = \"e2e-secret\"\np2p.stunAltPort = 7001\n")
	eventually(b, ready, "hops", func() bool { return l.srv.count("msg=listening") == 1 })

	// The owner: an echo (for round trips) and a sink (for throughput),
	// each as xtcp and as stcp.
	var echoLn, sinkLn net.Listener
	l.hosts["oa"].Do(func() (err error) {
		if echoLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return err
		}
		sinkLn, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	})
	b.Cleanup(func() { echoLn.Close(); sinkLn.Close() })
	serve := func(ln net.Listener, h func(net.Conn)) {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { h(c); c.Close() }()
			}
		}()
	}
	serve(echoLn, echo)
	serve(sinkLn, func(c net.Conn) { io.Copy(io.Discard, c) })
	port := func(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }
	owner := ""
	visitor := ""
	for i, p := range []struct {
		name, typ string
		local     int
	}{
		{"echo-x", "xtcp", port(echoLn)}, {"sink-x", "xtcp", port(sinkLn)},
		{"echo-s", "stcp", port(echoLn)}, {"sink-s", "stcp", port(sinkLn)},
	} {
		owner += fmt.Sprintf("\n[[proxies]]\nname = %q\ntype = %q\nsecretKey = %q\nlocalPort = %d\n", p.name, p.typ, p2pSecret, p.local)
		visitor += fmt.Sprintf("\n[[visitors]]\nname = \"v-%s\"\ntype = %q\nserverName = %q\nsecretKey = %q\nbindPort = %d\n", p.name, p.typ, p.name, p2pSecret, 9101+i)
	}
	l.startClient(b, "oa", owner)
	l.startClient(b, "vb", visitor)
	dial := func(port int) net.Conn {
		var c net.Conn
		eventually(b, ready, "the visitor port", func() bool {
			return l.hosts["vb"].Do(func() (err error) {
				c, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
				return
			}) == nil
		})
		return c
	}
	// Bring the direct paths up before measuring.
	for _, p := range []int{9101, 9102} {
		c := dial(p)
		c.Write([]byte("x"))
		c.Close()
	}
	eventually(b, 20*time.Second, "the direct paths", func() bool { return l.clients["vb"].count("direct path established") == 2 })

	for _, path := range []struct {
		name       string
		echo, sink int
	}{{"direct", 9101, 9102}, {"relayed", 9103, 9104}} {
		b.Run("throughput/"+path.name, func(b *testing.B) {
			c := dial(path.sink)
			defer c.Close()
			buf := make([]byte, 1<<20)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("rtt64/"+path.name, func(b *testing.B) {
			c := dial(path.echo)
			defer c.Close()
			msg, got := make([]byte, 64), make([]byte, 64)
			rtts := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, got); err != nil {
					b.Fatal(err)
				}
				rtts = append(rtts, time.Since(t0))
			}
			sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
			b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(rtts[len(rtts)*99/100].Microseconds()), "p99-µs")
		})
	}
	b.Run("time-to-direct-path", func(b *testing.B) {
		for i := range b.N {
			name := fmt.Sprintf("vb%d", i)
			l.hosts[name] = l.hosts["vb"]
			cfg := fmt.Sprintf("\n[[visitors]]\nname = \"t\"\ntype = \"xtcp\"\nserverName = \"echo-x\"\nsecretKey = %q\nbindPort = %d\n", p2pSecret, 9200+i%50)
			b.StopTimer()
			l.startClient(b, name, cfg)
			b.StartTimer()
			c := dial(9200 + i%50)
			t0 := time.Now()
			c.Write([]byte("x"))
			eventually(b, 20*time.Second, "the direct path", func() bool { return l.clients[name].count("direct path established") == 1 })
			b.ReportMetric(float64(time.Since(t0).Milliseconds()), "ms-to-path")
			c.Close()
			b.StopTimer()
			l.clients[name].interrupt(10 * time.Second)
			b.StartTimer()
		}
	})
}
