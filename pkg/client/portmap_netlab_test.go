package client

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/portmap"
	"github.com/hopproxy/hop/tests/netlab"
)

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
		pcp  bool
		g    *netlab.Gateway
	}
	// Both home networks are built here, on the test's goroutine.
	sides := []side{
		{"pcp", true, lab.Gateway(netlab.GatewayConfig{Name: "natp", WAN: wanNet, WANAddr: "198.51.100.31", LAN: "10.21.0.0/24",
			Host: "cp", NAT: netlab.NATConfig{Mode: netlab.RandomPort}, Miniupnpd: &netlab.MiniupnpdConfig{ExtIP: "11.45.81.1"}})},
		{"upnp-only", false, lab.Gateway(netlab.GatewayConfig{Name: "natu", WAN: wanNet, WANAddr: "198.51.100.32", LAN: "10.21.1.0/24",
			Host: "cu", NAT: netlab.NATConfig{Mode: netlab.RandomPort}, Miniupnpd: &netlab.MiniupnpdConfig{ExtIP: "11.45.82.1", DisableNATPMP: true}})},
	}
	for _, sd := range sides {
		t.Run(sd.name, func(t *testing.T) {
			nat, lan, d := sd.g.NAT, sd.g.Host, sd.g.Miniupnpd
			gw := nat.LANAddr()

			logs := &syncLog{}
			log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			pm, err := portmap.New(portmap.Config{Logger: log, Gateway: gw, Net: lan, Lifetime: 4 * time.Second, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			p := newMapperWith(pm, log)
			defer func() {
				p.close()
				if t.Failed() {
					t.Logf("log:\n%s", logs) // netlab logs miniupnpd's output
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
