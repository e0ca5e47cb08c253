package client

import (
	"bytes"
	"context"
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

// nsNet opens the portmap client's sockets inside a lab host's namespace.
type nsNet struct{ h *netlab.Host }

func (n nsNet) DialContext(ctx context.Context, network, addr string) (c net.Conn, err error) {
	if derr := n.h.Do(func() error {
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return nil
	}); derr != nil {
		return nil, derr
	}
	return c, err
}

func (n nsNet) ListenPacket(ctx context.Context, network, addr string) (pc net.PacketConn, err error) {
	if derr := n.h.Do(func() error {
		pc, err = (&net.ListenConfig{}).ListenPacket(ctx, network, addr)
		return nil
	}); derr != nil {
		return nil, derr
	}
	return pc, err
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestKeepFlowMiniupnpd: keepFlow against a real miniupnpd. With PCP the
// punched flow gets a PEER mapping that is renewed at half its lifetime
// and dropped on release; behind a UPnP-only miniupnpd keepFlow learns
// that there is no PCP and asks no more.
func TestKeepFlowMiniupnpd(t *testing.T) {
	netlab.RequireMiniupnpd(t)
	lab := netlab.New(t)
	wanNet := lab.Network("wan", "198.51.100.0/24")
	srv := lab.Host("srv")
	srv.Attach(wanNet, "198.51.100.10")
	type side struct {
		name string
		cfg  netlab.MiniupnpdConfig
		pcp  bool
	}
	for i, sd := range []side{
		{"pcp", netlab.MiniupnpdConfig{ExtIP: "11.45.81.1"}, true},
		{"upnp-only", netlab.MiniupnpdConfig{ExtIP: "11.45.82.1", DisableNATPMP: true}, false},
	} {
		t.Run(sd.name, func(t *testing.T) {
			lanNet := lab.Network("lan"+sd.name[:1], netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 21, byte(i), 0}), 24).String())
			gw := netip.AddrFrom4([4]byte{10, 21, byte(i), 1})
			nat := lab.NAT("nat"+sd.name[:1], wanNet, netip.AddrFrom4([4]byte{198, 51, 100, byte(31 + i)}).String(),
				lanNet, gw.String(), netlab.NATConfig{Mode: netlab.RandomPort})
			lan := lab.Host("c" + sd.name[:1])
			lan.Attach(lanNet, netip.AddrFrom4([4]byte{10, 21, byte(i), 10}).String())
			lan.DefaultRoute(gw.String())
			d := nat.Miniupnpd(sd.cfg)

			logs := &lockedBuf{}
			log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			pm, err := portmap.New(portmap.Config{Logger: log, Gateway: gw, Net: nsNet{lan}, Lifetime: 4 * time.Second, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			p := newMapperWith(pm, log)
			defer func() {
				p.close()
				if t.Failed() {
					t.Logf("log:\n%s\nminiupnpd:\n%s", logs, d.Output())
				}
			}()

			// The punched flow: a LAN socket that has sent to the peer.
			var conn net.PacketConn
			if err := lan.Do(func() (err error) { conn, err = net.ListenPacket("udp4", "0.0.0.0:0"); return }); err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			port := uint16(conn.LocalAddr().(*net.UDPAddr).Port)
			remote := netip.MustParseAddrPort("198.51.100.10:40000")
			if _, err := conn.WriteTo([]byte("punch"), net.UDPAddrFromAddrPort(remote)); err != nil {
				t.Fatal(err)
			}

			release := p.keepFlow(context.Background(), port, remote)
			if !sd.pcp {
				waitFor(t, "the mapper to learn the gateway has no PCP", func() bool {
					p.mu.Lock()
					defer p.mu.Unlock()
					return p.pcp == pcpNo
				})
				release()
				waitFor(t, "the failed PEER request dropped", func() bool { return len(pm.Mappings()) == 0 })
				p.keepFlow(context.Background(), port, remote)()
				if !strings.Contains(logs.String(), `why="the gateway does not speak PCP"`) || len(pm.Mappings()) != 0 {
					t.Fatalf("a second PEER request to a UPnP-only gateway: %+v\n%s", pm.Mappings(), logs)
				}
				return
			}
			// Granted, and renewed at half its lifetime (min_lifetime 2 s,
			// asked 4 s): the expiry moves twice.
			var peer portmap.Mapping
			renewals, last := -1, time.Time{}
			deadline := time.Now().Add(20 * time.Second)
			for renewals < 2 {
				for _, m := range pm.Mappings() {
					if m.Remote == remote && m.Valid() {
						peer = m
					}
				}
				if peer.Valid() && !peer.Expires.Equal(last) {
					last = peer.Expires
					renewals++
				}
				if time.Now().After(deadline) {
					t.Fatalf("PEER mapping %+v renewed %d times in 20s, want 2", peer, renewals)
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("PEER mapping: %+v", peer)
			if peer.Method != portmap.MethodPCP || peer.InternalPort != port || peer.External.Addr() != d.ExtIP() {
				t.Fatalf("PEER mapping %+v", peer)
			}
			// miniupnpd 2.3.1 (nftables) writes PEER rules as raw payload
			// matches, and adds one more identical rule at every renewal.
			out, err := nat.Run(context.Background(), "nft", "list", "chain", "inet", "miniupnpd", "postrouting_miniupnpd")
			rule := fmt.Sprintf("th sport %d snat ip to %v", remote.Port(), peer.External)
			if err != nil || !strings.Contains(string(out), rule) {
				t.Fatalf("miniupnpd has no rule %q for the peer: %v\n%s", rule, err, out)
			}
			t.Logf("miniupnpd's PEER rules:\n%s", out)
			release()
			waitFor(t, "the PEER mapping released", func() bool { return len(pm.Mappings()) == 0 })
		})
	}
}
