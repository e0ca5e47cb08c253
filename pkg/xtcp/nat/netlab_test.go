package nat

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/xtcp/stunserver"
	"github.com/hopproxy/hop/tests/netlab"
)

// Addresses of the lab of TestNetlab.
const (
	srvIP    = "198.51.100.10"
	srvAltIP = "198.51.100.11"
	nat1WAN  = "198.51.100.21"
	nat2WAN  = "198.51.100.22"
	directIP = "198.51.100.30"
	nat3WAN  = "198.51.100.23"
	c1IP     = "10.1.0.10"
	c2IP     = "10.2.0.10"
	c3IP     = "10.3.0.10"
)

// TestNetlab runs Discover through real Linux NATs: a WAN with a STUN
// server host holding two addresses, a client behind a port-preserving NAT
// (nft masquerade), one behind a random-port NAT (masquerade random), and
// one directly on the WAN. Every client asks two servers on that host: one
// with an alternate address and port, one with an alternate port only.
func TestNetlab(t *testing.T) {
	lab := netlab.New(t)
	wan := lab.Network("wan", "198.51.100.0/24")
	lan1 := lab.Network("lan1", "10.1.0.0/24")
	lan2 := lab.Network("lan2", "10.2.0.0/24")

	srv := lab.Host("srv")
	srv.Attach(wan, srvIP)
	srv.Attach(wan, srvAltIP) // a second leg on the same segment
	lab.NAT("nat1", wan, nat1WAN, lan1, "10.1.0.1", netlab.NATConfig{Mode: netlab.PortPreserving})
	lab.NAT("nat2", wan, nat2WAN, lan2, "10.2.0.1", netlab.NATConfig{Mode: netlab.RandomPort})
	c1 := lab.Host("c1")
	c1.Attach(lan1, c1IP)
	c1.DefaultRoute("10.1.0.1")
	c2 := lab.Host("c2")
	c2.Attach(lan2, c2IP)
	c2.DefaultRoute("10.2.0.1")
	direct := lab.Host("direct")
	direct.Attach(wan, directIP)
	lan3 := lab.Network("lan3", "10.3.0.0/24")
	lab.NAT("nat3", wan, nat3WAN, lan3, "10.3.0.1", netlab.NATConfig{Mode: netlab.PortPreserving, LossPercent: 10})
	c3 := lab.Host("c3")
	c3.Attach(lan3, c3IP)
	c3.DefaultRoute("10.3.0.1")

	full := startIn(t, srv, stunserver.Config{
		Primary: netip.MustParseAddrPort(srvIP + ":3478"),
		AltPort: 3479,
		AltAddr: netip.MustParseAddr(srvAltIP),
	})
	portOnly := startIn(t, srv, stunserver.Config{
		Primary: netip.MustParseAddrPort(srvIP + ":4478"),
		AltPort: 4479,
	})

	type want struct {
		behind, preserved  bool
		mapping, filtering Behavior
		mappingNote        bool // a note is expected
		filteringNote      bool
		predict            int // PredictPorts(3): 1 non-empty, -1 empty, 0 unchecked
	}
	tests := []struct {
		name   string
		host   *netlab.Host
		bind   string
		server *stunserver.Server
		want   want
	}{
		{"port-preserving NAT, full server", c1, c1IP + ":0", full,
			want{true, true, EndpointIndependent, AddressAndPortDependent, false, false, 1}},
		{"port-preserving NAT, alt port only", c1, c1IP + ":0", portOnly,
			want{true, true, EndpointIndependent, AddressAndPortDependent, true, false, 1}},
		// Three random deltas: equal and small by chance about never.
		{"random-port NAT, full server", c2, c2IP + ":0", full,
			want{true, false, AddressAndPortDependent, AddressAndPortDependent, false, false, -1}},
		// One random delta is small by chance once in a few thousand runs.
		{"random-port NAT, alt port only", c2, c2IP + ":0", portOnly,
			want{true, false, AddressAndPortDependent, AddressAndPortDependent, false, false, 0}},
		// Bound to 0.0.0.0: Discover runs inside the namespace to find
		// the local address.
		{"no NAT, full server", direct, "0.0.0.0:0", full,
			want{false, true, EndpointIndependent, EndpointIndependent, false, false, 1}},
		{"no NAT, alt port only", direct, "0.0.0.0:0", portOnly,
			want{false, true, EndpointIndependent, AddressDependent, true, true, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var conn *net.UDPConn
			var r *Report
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			defer cancel()
			err := tt.host.Do(func() (err error) {
				conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(tt.bind)))
				if err != nil || tt.host != direct {
					return err
				}
				r, err = Discover(ctx, conn, tt.server.Addrs()[0], Options{})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if r == nil { // outside the namespace: the socket is in it
				if r, err = Discover(ctx, conn, tt.server.Addrs()[0], Options{}); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("%s\n%s\nprobes %v deltas %v predict %v", r.Class(), r.Explain(), r.Probes, r.Deltas, r.PredictPorts(3))

			w := tt.want
			la := conn.LocalAddr().(*net.UDPAddr).AddrPort()
			wantLocal := netip.AddrPortFrom(netip.MustParseAddr(strings.Split(tt.bind, ":")[0]), la.Port())
			if tt.host == direct {
				wantLocal = netip.AddrPortFrom(netip.MustParseAddr(directIP), la.Port())
			}
			if r.LocalAddr != wantLocal {
				t.Errorf("LocalAddr %v, want %v", r.LocalAddr, wantLocal)
			}
			wantPublic := map[*netlab.Host]string{c1: nat1WAN, c2: nat2WAN, direct: directIP}[tt.host]
			if r.Mapped.Addr() != netip.MustParseAddr(wantPublic) {
				t.Errorf("Mapped %v, want address %s", r.Mapped, wantPublic)
			}
			if r.Behind() != w.behind || r.PortPreserved != w.preserved {
				t.Errorf("Behind %v PortPreserved %v, want %v %v", r.Behind(), r.PortPreserved, w.behind, w.preserved)
			}
			if r.Mapping != w.mapping || (r.MappingNote != "") != w.mappingNote {
				t.Errorf("Mapping %v (note %q), want %v (note %v)", r.Mapping, r.MappingNote, w.mapping, w.mappingNote)
			}
			if r.Filtering != w.filtering || (r.FilteringNote != "") != w.filteringNote {
				t.Errorf("Filtering %v (note %q), want %v (note %v)", r.Filtering, r.FilteringNote, w.filtering, w.filteringNote)
			}
			for _, p := range r.Probes {
				if !p.Mapped.IsValid() {
					t.Errorf("probe to %v unanswered", p.To)
				}
			}
			if got := r.PredictPorts(3); w.predict != 0 && (len(got) > 0) != (w.predict > 0) {
				t.Errorf("PredictPorts = %v (deltas %v), want some: %v", got, r.Deltas, w.predict > 0)
			}
		})
	}

	// Behind a port-preserving NAT that loses 10 % of what it forwards
	// each way, every run says EIM/APDF or, where answers were lost,
	// Unknown: never a behaviour read from an answer that did not come.
	t.Run("port-preserving NAT with 10% loss", func(t *testing.T) {
		conclusive := 0
		for i := range 4 {
			var conn *net.UDPConn
			if err := c3.Do(func() (err error) {
				conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(c3IP+":0")))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			r, err := Discover(ctx, conn, full.Addrs()[0], Options{Tries: 4, Interval: 50 * time.Millisecond})
			cancel()
			conn.Close()
			if err != nil {
				t.Logf("run %d: %v", i, err)
				continue
			}
			t.Logf("run %d: %s (%s / %s)", i, r.Class(), r.MappingNote, r.FilteringNote)
			if r.Mapping != EndpointIndependent && r.Mapping != Unknown || r.Filtering != AddressAndPortDependent && r.Filtering != Unknown {
				t.Errorf("run %d: %s, want EIM/APDF or Unknown parts", i, r.Class())
			}
			if r.Class() == "EIM/APDF" {
				conclusive++
			}
		}
		if conclusive < 2 {
			t.Errorf("only %d of 4 runs conclusive", conclusive)
		}
	})
}

// startIn runs a STUN server with its sockets in h's namespace; its
// goroutines serve them from any thread.
func startIn(t *testing.T, h *netlab.Host, cfg stunserver.Config) *stunserver.Server {
	t.Helper()
	var s *stunserver.Server
	if err := h.Do(func() (err error) {
		s, err = stunserver.Listen(cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stun server: %v", err)
		}
	})
	return s
}
