package portmap_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/portmap"
	"github.com/hopproxy/hop/tests/netlab"
)

// logBuf collects log lines.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func testLogger(t *testing.T) (*slog.Logger, *logBuf) {
	lb := &logBuf{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// lab is a LAN host behind a NAT (optionally running miniupnpd) and a host
// on the WAN side.
type lab struct {
	lab *netlab.Lab
	nat *netlab.NAT
	lan *netlab.Host
	wan *netlab.Host
	gw  netip.Addr
	d   *netlab.Miniupnpd
}

func newLab(t *testing.T, cfg *netlab.MiniupnpdConfig) *lab {
	t.Helper()
	if cfg != nil {
		netlab.RequireMiniupnpd(t)
	}
	l := netlab.New(t)
	wanNet := l.Network("wan", "198.51.100.0/24")
	wan := l.Host("srv")
	wan.Attach(wanNet, "198.51.100.10")
	g := l.Gateway(netlab.GatewayConfig{Name: "nat", WAN: wanNet, WANAddr: "198.51.100.21", LAN: "10.1.0.0/24",
		Host: "c1", NAT: netlab.NATConfig{Mode: netlab.RandomPort}, Miniupnpd: cfg})
	nat, lan := g.NAT, g.Host
	r := &lab{lab: l, nat: nat, lan: lan, wan: wan}
	// The default route's gateway, read from the LAN host's routing table.
	if err := lan.Do(func() (err error) {
		r.gw, err = portmap.DefaultGateway()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if r.gw != nat.LANAddr() {
		t.Fatalf("DefaultGateway in the LAN host = %v, want %v", r.gw, nat.LANAddr())
	}
	r.d = g.Miniupnpd
	return r
}

func (r *lab) client(t *testing.T, cfg portmap.Config) (*portmap.Client, *logBuf) {
	t.Helper()
	log, lb := testLogger(t)
	cfg.Logger = log
	cfg.Net = r.lan
	// DefaultGateway in the client's goroutines would read the root
	// namespace's table: give the one read inside the LAN host.
	cfg.Gateway = r.gw
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Second
	}
	c, err := portmap.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			t.Logf("portmap log:\n%s", lb)
		}
	})
	return c, lb
}

// checkUDPReach shows the mapping is real: a WAN host sends to the NAT's
// lab WAN address on the mapped port, and the LAN socket bound to the
// internal port receives it.
func (r *lab) checkUDPReach(t *testing.T, lanConn net.PacketConn, m portmap.Mapping) {
	t.Helper()
	var out net.PacketConn
	if err := r.wan.Do(func() (err error) {
		out, err = net.ListenPacket("udp4", ":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(r.nat.WANAddr(), m.External.Port()))
	msg := fmt.Sprintf("hello %s %d", m.Method, m.External.Port())
	buf := make([]byte, 100)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := out.WriteTo([]byte(msg), dst); err != nil {
			t.Fatal(err)
		}
		lanConn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, from, err := lanConn.ReadFrom(buf)
		if err == nil && string(buf[:n]) == msg {
			t.Logf("WAN %s -> %v reached LAN %s from %v", out.LocalAddr(), dst, lanConn.LocalAddr(), from)
			return
		}
	}
	t.Fatalf("nothing sent from the WAN to %v (mapping %+v) reached %s", dst, m, lanConn.LocalAddr())
}

func (r *lab) listenUDP(t *testing.T) (net.PacketConn, uint16) {
	t.Helper()
	var pc net.PacketConn
	if err := r.lan.Do(func() (err error) {
		pc, err = net.ListenPacket("udp4", "0.0.0.0:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc, uint16(pc.LocalAddr().(*net.UDPAddr).Port)
}

func TestPortmapMiniupnpdAll(t *testing.T) {
	r := newLab(t, &netlab.MiniupnpdConfig{})
	ctx := context.Background()

	t.Run("probe", func(t *testing.T) {
		c, _ := r.client(t, portmap.Config{})
		p := c.Probe(ctx)
		t.Logf("probe: %+v", p)
		if !p.PCP || !p.NATPMP || !p.UPnP {
			t.Fatalf("probe %+v: want PCP, NAT-PMP and UPnP all answering", p)
		}
		if p.External != r.d.ExtIP() || p.Gateway != r.gw {
			t.Fatalf("probe external %v gateway %v, want %v and %v", p.External, p.Gateway, r.d.ExtIP(), r.gw)
		}
	})

	for _, tc := range []struct {
		name    string
		methods []portmap.Method
		want    portmap.Method
	}{
		{"pcp", []portmap.Method{portmap.MethodPCP}, portmap.MethodPCP},
		{"natpmp", []portmap.Method{portmap.MethodNATPMP}, portmap.MethodNATPMP},
		{"upnp", []portmap.Method{portmap.MethodUPnP}, portmap.MethodUPnP},
		{"auto", nil, portmap.MethodPCP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := r.client(t, portmap.Config{Methods: tc.methods, Lifetime: time.Minute})
			pc, port := r.listenUDP(t)
			m, err := c.Map(ctx, "udp", port)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("mapping: %+v", m)
			if m.Method != tc.want || m.External.Addr() != r.d.ExtIP() || m.InternalPort != port || m.Lifetime <= 0 {
				t.Fatalf("mapping %+v: want method %s, external address %v, a lifetime", m, tc.want, r.d.ExtIP())
			}
			r.checkUDPReach(t, pc, m)
			rules, err := r.d.Rules()
			if err != nil || !strings.Contains(rules, fmt.Sprintf("dport %d ", m.External.Port())) {
				t.Fatalf("miniupnpd rules lack port %d: %v\n%s", m.External.Port(), err, rules)
			}
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			rules, err = r.d.Rules()
			if err != nil || strings.Contains(rules, fmt.Sprintf("dport %d ", m.External.Port())) {
				t.Fatalf("after Close, miniupnpd rules still have port %d: %v\n%s", m.External.Port(), err, rules)
			}
		})
	}

	t.Run("tcp", func(t *testing.T) {
		c, _ := r.client(t, portmap.Config{})
		var ln net.Listener
		if err := r.lan.Do(func() (err error) {
			ln, err = net.Listen("tcp4", "0.0.0.0:0")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		port := uint16(ln.Addr().(*net.TCPAddr).Port)
		m, err := c.Map(ctx, "tcp", port)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("mapping: %+v", m)
		accepted := make(chan string, 1)
		go func() {
			conn, err := ln.Accept()
			if err != nil {
				accepted <- err.Error()
				return
			}
			defer conn.Close()
			buf := make([]byte, 10)
			n, _ := conn.Read(buf)
			accepted <- string(buf[:n])
		}()
		var conn net.Conn
		if err := r.wan.Do(func() (err error) {
			conn, err = net.DialTimeout("tcp4", netip.AddrPortFrom(r.nat.WANAddr(), m.External.Port()).String(), 5*time.Second)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte("tcp-hello"))
		conn.Close()
		select {
		case got := <-accepted:
			if got != "tcp-hello" {
				t.Fatalf("LAN listener got %q", got)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the WAN host's connection did not reach the LAN listener")
		}
	})

	t.Run("peer", func(t *testing.T) {
		c, _ := r.client(t, portmap.Config{})
		_, port := r.listenUDP(t)
		remote := netip.MustParseAddrPort("198.51.100.10:40000")
		m, err := c.Peer(ctx, "udp", port, remote)
		t.Logf("PCP PEER: %+v, %v", m, err)
		if err != nil {
			t.Fatalf("Peer: %v", err)
		}
		if m.Method != portmap.MethodPCP || m.Remote != remote || m.External.Addr() != r.d.ExtIP() || m.Lifetime <= 0 {
			t.Fatalf("PEER mapping %+v", m)
		}
		// miniupnpd 2.3.1 (nftables) does not find its own PEER rules to
		// delete them: it answers NO_RESOURCES ("Failed to find PCP
		// mapping") and the rule expires with its lifetime. Unmap still
		// drops the mapping from the client.
		if err := c.Unmap(ctx, "udp", port, remote); err != nil && !errors.Is(err, portmap.ErrRefused) {
			t.Fatalf("Unmap of the PEER mapping: %v", err)
		} else if err != nil {
			t.Logf("Unmap of the PEER mapping: %v (miniupnpd cannot delete PEER rules)", err)
		}
		if ms := c.Mappings(); len(ms) != 0 {
			t.Fatalf("after Unmap: %+v", ms)
		}
	})
}

func TestPortmapMiniupnpdNoUPnP(t *testing.T) {
	r := newLab(t, &netlab.MiniupnpdConfig{DisableUPnP: true})
	ctx := context.Background()
	for _, method := range []portmap.Method{portmap.MethodPCP, portmap.MethodNATPMP, ""} {
		t.Run(string(method)+"auto", func(t *testing.T) {
			cfg := portmap.Config{}
			if method != "" {
				cfg.Methods = []portmap.Method{method}
			}
			c, _ := r.client(t, cfg)
			pc, port := r.listenUDP(t)
			m, err := c.Map(ctx, "udp", port)
			if err != nil {
				t.Fatal(err)
			}
			if method != "" && m.Method != method || method == "" && m.Method != portmap.MethodPCP {
				t.Fatalf("mapping %+v: wrong method", m)
			}
			r.checkUDPReach(t, pc, m)
		})
	}
	t.Run("upnp-forced", func(t *testing.T) {
		c, _ := r.client(t, portmap.Config{Methods: []portmap.Method{portmap.MethodUPnP}})
		_, port := r.listenUDP(t)
		_, err := c.Map(ctx, "udp", port)
		t.Logf("UPnP with enable_upnp=no: %v", err)
		if !errors.Is(err, portmap.ErrNoGateway) {
			t.Fatalf("Map with UPnP forced and enable_upnp=no: %v, want ErrNoGateway", err)
		}
	})
}

func TestPortmapMiniupnpdNoNATPMP(t *testing.T) {
	r := newLab(t, &netlab.MiniupnpdConfig{DisableNATPMP: true})
	ctx := context.Background()
	c, _ := r.client(t, portmap.Config{})
	p := c.Probe(ctx)
	t.Logf("probe: %+v", p)
	if p.PCP || p.NATPMP || !p.UPnP || p.Service == "" {
		t.Fatalf("probe %+v: want only UPnP", p)
	}
	pc, port := r.listenUDP(t)
	m, err := c.Map(ctx, "udp", port)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mapping: %+v", m)
	if m.Method != portmap.MethodUPnP {
		t.Fatalf("mapping %+v: want upnp", m)
	}
	r.checkUDPReach(t, pc, m)
}

func TestPortmapMiniupnpdRestart(t *testing.T) {
	r := newLab(t, &netlab.MiniupnpdConfig{})
	ctx := context.Background()
	for _, method := range []portmap.Method{portmap.MethodPCP, portmap.MethodNATPMP, portmap.MethodUPnP} {
		t.Run(string(method), func(t *testing.T) {
			changes := make(chan portmap.Mapping, 16)
			c, lb := r.client(t, portmap.Config{
				Methods:  []portmap.Method{method},
				Lifetime: 4 * time.Second,
				RetryMin: 200 * time.Millisecond,
				OnChange: func(m portmap.Mapping) { changes <- m },
			})
			pc, port := r.listenUDP(t)
			m, err := c.Map(ctx, "udp", port)
			if err != nil {
				t.Fatal(err)
			}
			r.checkUDPReach(t, pc, m)
			// Two renewals first, so the daemon's epoch before the
			// restart is above what it will be at the renewal after it
			// (a restart within a second or two of the daemon's start
			// cannot be told from the epoch alone).
			waitRenewals(t, c, 2)
			if err := r.d.Restart(); err != nil {
				t.Fatal(err)
			}
			if rules, _ := r.d.Rules(); strings.Contains(rules, fmt.Sprintf("dport %d ", m.External.Port())) {
				t.Fatalf("the restarted miniupnpd still has the mapping:\n%s", rules)
			}
			select {
			case m2 := <-changes:
				t.Logf("re-created after the restart: %+v", m2)
				if !m2.Valid() || m2.Method != method {
					t.Fatalf("OnChange %+v: want a valid %s mapping", m2, method)
				}
				r.checkUDPReach(t, pc, m2)
			case <-time.After(20 * time.Second):
				t.Fatalf("no mapping re-created within 20s of the restart; log:\n%s", lb)
			}
			if lb.count("re-creating every mapping") == 0 {
				t.Fatalf("the log does not say the mappings were re-created:\n%s", lb)
			}
			t.Logf("portmap log:\n%s", lb)
		})
	}
}

func TestPortmapSilentGateway(t *testing.T) {
	r := newLab(t, nil)
	// The gateway drops PCP/NAT-PMP and SSDP silently: not even an ICMP
	// port unreachable comes back.
	if err := r.nat.DropPortMapping(); err != nil {
		t.Fatal(err)
	}
	c, lb := r.client(t, portmap.Config{Timeout: 500 * time.Millisecond, RetryMin: 100 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, port := range []uint16{40001, 40002} {
		_, err := c.Map(ctx, "udp", port)
		if !errors.Is(err, portmap.ErrNoGateway) {
			t.Fatalf("Map: %v, want ErrNoGateway", err)
		}
		if ctx.Err() != nil {
			t.Fatal("Map hung until the test's deadline")
		}
	}
	// Let the background retries run a few times.
	for lb.count("still no port-mapping gateway") < 3 {
		if ctx.Err() != nil {
			t.Fatalf("no background retries seen:\n%s", lb)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := lb.count("no port-mapping gateway: UPnP, NAT-PMP and PCP unanswered"); n != 1 {
		t.Fatalf("the no-gateway line was logged %d times, want once:\n%s", n, lb)
	}
	p := c.Probe(ctx)
	if p.PCP || p.NATPMP || p.UPnP {
		t.Fatalf("probe of a silent gateway: %+v", p)
	}
}

// waitRenewals waits until the client's only mapping has been renewed n
// times (its expiry moved n times).
func waitRenewals(t *testing.T, c *portmap.Client, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last time.Time
	seen := -1
	for seen < n {
		ms := c.Mappings()
		if len(ms) != 1 {
			t.Fatalf("mappings %+v, want one", ms)
		}
		if !ms[0].Expires.Equal(last) {
			last = ms[0].Expires
			seen++
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d renewals in 30s, want %d", seen, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPortmapMiniupnpdStoppedThenBack: the daemon stops while a mapping is
// held. The renewal fails, the client searches for the gateway again,
// finds nothing, says so once and retries with backoff; the mapping is
// reported lost. When the daemon is back, a retry re-creates the mapping.
func TestPortmapMiniupnpdStoppedThenBack(t *testing.T) {
	r := newLab(t, &netlab.MiniupnpdConfig{})
	changes := make(chan portmap.Mapping, 16)
	c, lb := r.client(t, portmap.Config{
		Lifetime: 4 * time.Second, Timeout: 500 * time.Millisecond,
		RetryMin: 200 * time.Millisecond, RetryMax: time.Second,
		OnChange: func(m portmap.Mapping) { changes <- m },
	})
	pc, port := r.listenUDP(t)
	m, err := c.Map(context.Background(), "udp", port)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.d.Stop(); err != nil {
		t.Fatal(err)
	}
	next := func(what string) portmap.Mapping {
		t.Helper()
		select {
		case m := <-changes:
			return m
		case <-time.After(20 * time.Second):
			t.Fatalf("no OnChange for %s within 20s; log:\n%s", what, lb)
		}
		return portmap.Mapping{}
	}
	if lost := next("the lost mapping"); lost.Valid() {
		t.Fatalf("OnChange %+v after the daemon stopped, want the mapping lost", lost)
	}
	deadline := time.Now().Add(20 * time.Second)
	for lb.count("still no port-mapping gateway") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no background retries within 20s; log:\n%s", lb)
		}
		if len(changes) > 0 {
			t.Fatalf("OnChange while the daemon is stopped: %+v", <-changes)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	back := next("the re-created mapping")
	if !back.Valid() || back.Method != m.Method {
		t.Fatalf("OnChange %+v after the daemon came back, want a %s mapping", back, m.Method)
	}
	r.checkUDPReach(t, pc, back)
	if n := lb.count("no port-mapping gateway: UPnP, NAT-PMP and PCP unanswered"); n != 1 {
		t.Fatalf("the no-gateway line was logged %d times, want once:\n%s", n, lb)
	}
	if lb.count("port-mapping gateway answers again") != 1 {
		t.Fatalf("no line says the gateway answers again:\n%s", lb)
	}
}
