package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/portmap"
	"github.com/hopproxy/hop/pkg/protocol"
)

// fakeMapper is a gateway as portmap.Client shows it: it maps every port
// to ext with port+20000, answers nothing (noGW), or answers after delay.
type fakeMapper struct {
	ext   netip.Addr
	noGW  bool
	delay time.Duration

	noPCP bool // Peer answers ErrUnsupported (a NAT-PMP or UPnP gateway)

	mu        sync.Mutex
	maps      int
	unmaps    []uint16
	closed    bool
	current   map[uint16]bool
	peerCalls int
	peers     map[netip.AddrPort]uint16 // live PEER mappings: remote -> port
}

func (f *fakeMapper) Peer(ctx context.Context, proto string, port uint16, remote netip.AddrPort) (portmap.Mapping, error) {
	f.mu.Lock()
	f.peerCalls++
	f.mu.Unlock()
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return portmap.Mapping{}, ctx.Err()
		}
	}
	switch {
	case f.noGW:
		return portmap.Mapping{}, fmt.Errorf("%w: fake", portmap.ErrNoGateway)
	case f.noPCP:
		return portmap.Mapping{}, fmt.Errorf("%w: fake NAT-PMP gateway", portmap.ErrUnsupported)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.peers == nil {
		f.peers = map[netip.AddrPort]uint16{}
	}
	f.peers[remote] = port
	return portmap.Mapping{Protocol: proto, InternalPort: port, Remote: remote, External: netip.AddrPortFrom(f.ext, port+20000),
		Method: portmap.MethodPCP, Lifetime: mapLifetime}, nil
}

func (f *fakeMapper) peerState() (calls int, live map[netip.AddrPort]uint16) {
	f.mu.Lock()
	defer f.mu.Unlock()
	live = map[netip.AddrPort]uint16{}
	for k, v := range f.peers {
		live[k] = v
	}
	return f.peerCalls, live
}

func (f *fakeMapper) Map(ctx context.Context, proto string, port uint16) (portmap.Mapping, error) {
	f.mu.Lock()
	f.maps++
	f.mu.Unlock()
	if proto != "udp" {
		return portmap.Mapping{}, fmt.Errorf("%w: proto %q", portmap.ErrBadRequest, proto)
	}
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return portmap.Mapping{}, ctx.Err()
		}
	}
	if f.noGW {
		return portmap.Mapping{}, fmt.Errorf("%w: fake", portmap.ErrNoGateway)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.current == nil {
		f.current = map[uint16]bool{}
	}
	f.current[port] = true
	return portmap.Mapping{Protocol: proto, InternalPort: port, External: netip.AddrPortFrom(f.ext, port+20000),
		Method: portmap.MethodPCP, Lifetime: mapLifetime}, nil
}

func (f *fakeMapper) Unmap(ctx context.Context, proto string, port uint16, remote netip.AddrPort) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if remote.IsValid() {
		if _, ok := f.peers[remote]; !ok {
			return fmt.Errorf("%w: no PEER mapping to %v", portmap.ErrBadRequest, remote)
		}
		delete(f.peers, remote)
		return nil
	}
	f.unmaps = append(f.unmaps, port)
	delete(f.current, port)
	return nil
}

func (f *fakeMapper) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakeMapper) state() (maps int, unmaps []uint16, live int, closed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maps, append([]uint16(nil), f.unmaps...), len(f.current), f.closed
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMapperCandidates(t *testing.T) {
	ext := netip.MustParseAddr("203.0.113.7")
	srflx := netip.MustParseAddr("198.51.100.23")
	t.Run("mapped at both addresses, unmapped on release", func(t *testing.T) {
		f := &fakeMapper{ext: ext}
		p := newMapperWith(f, slog.New(slog.DiscardHandler))
		defer p.close()
		cands, release := p.candidates(4000, srflx, time.Minute)
		want := []protocol.Candidate{{Kind: "mapped", Addr: "203.0.113.7:24000"}, {Kind: "mapped", Addr: "198.51.100.23:24000"}}
		if !reflect.DeepEqual(cands, want) {
			t.Fatalf("candidates %v, want %v", cands, want)
		}
		if _, unmaps, live, _ := f.state(); len(unmaps) != 0 || live != 1 {
			t.Fatalf("before release: unmaps %v, live %d", unmaps, live)
		}
		release()
		release()
		waitFor(t, "the unmap", func() bool { _, u, live, _ := f.state(); return len(u) == 1 && live == 0 })
		p.close()
		if _, u, _, closed := f.state(); !closed || len(u) != 1 || u[0] != 4000 {
			t.Fatalf("after close: unmaps %v closed %v, want one unmap of 4000 and closed", u, closed)
		}
	})
	t.Run("gateway not behind another NAT: one candidate", func(t *testing.T) {
		p := newMapperWith(&fakeMapper{ext: ext}, slog.New(slog.DiscardHandler))
		defer p.close()
		cands, release := p.candidates(4000, ext, time.Minute)
		defer release()
		if want := []protocol.Candidate{{Kind: "mapped", Addr: "203.0.113.7:24000"}}; !reflect.DeepEqual(cands, want) {
			t.Fatalf("candidates %v, want %v", cands, want)
		}
	})
	t.Run("no gateway: not asked again within the backoff", func(t *testing.T) {
		f := &fakeMapper{ext: ext, noGW: true}
		p := newMapperWith(f, slog.New(slog.DiscardHandler))
		defer p.close()
		for i := range 3 {
			cands, release := p.candidates(uint16(4000+i), srflx, time.Minute)
			release()
			if cands != nil {
				t.Fatalf("candidates %v without a gateway", cands)
			}
		}
		waitFor(t, "the failed request dropped", func() bool { _, u, _, _ := f.state(); return len(u) == 1 })
		if maps, u, _, _ := f.state(); maps != 1 || u[0] != 4000 {
			t.Fatalf("%d Maps (want 1: the backoff skips the rest), unmaps %v", maps, u)
		}
		// After the backoff, ask again.
		p.mu.Lock()
		p.skipUntil = time.Now().Add(-time.Second)
		p.mu.Unlock()
		p.candidates(4010, srflx, time.Minute)
		if maps, _, _, _ := f.state(); maps != 2 {
			t.Fatalf("%d Maps after the backoff, want 2", maps)
		}
		if p.skipFor != 2*noGatewayMin {
			t.Fatalf("backoff %v after two silent rounds, want %v", p.skipFor, 2*noGatewayMin)
		}
	})
	t.Run("late mapping is deleted, the attempt does not wait for it", func(t *testing.T) {
		f := &fakeMapper{ext: ext, delay: 200 * time.Millisecond}
		p := newMapperWith(f, slog.New(slog.DiscardHandler))
		defer p.close()
		cands, release := p.candidates(4000, srflx, time.Millisecond)
		release()
		if cands != nil {
			t.Fatalf("candidates %v from a mapping that came too late", cands)
		}
		waitFor(t, "the late mapping deleted", func() bool { m, u, live, _ := f.state(); return m == 1 && len(u) == 1 && live == 0 })
		// A gateway answered: the next attempt asks again.
		p.candidates(4001, srflx, time.Millisecond)
		if maps, _, _, _ := f.state(); maps != 2 {
			t.Fatalf("%d Maps, want 2", maps)
		}
	})
	t.Run("closed or off", func(t *testing.T) {
		f := &fakeMapper{ext: ext}
		p := newMapperWith(f, slog.New(slog.DiscardHandler))
		p.close()
		p.close()
		if cands, _ := p.candidates(4000, srflx, time.Minute); cands != nil {
			t.Fatalf("candidates %v after close", cands)
		}
		var off *p2pMapper
		if cands, release := off.candidates(4000, srflx, time.Minute); cands != nil || release == nil {
			t.Fatalf("nil mapper: %v", cands)
		}
		off.close()
		if maps, _, _, _ := f.state(); maps != 0 {
			t.Fatalf("%d Maps after close", maps)
		}
	})
}

func TestNewP2PMapperOnlyWhenUsed(t *testing.T) {
	cfg := config.DefaultClient()
	if newP2PMapper(&cfg, slog.New(slog.DiscardHandler)) != nil {
		t.Fatal("a mapper without xtcp/xudp proxies or visitors")
	}
	cfg.Proxies = []config.ProxyConfig{{Name: "x", Type: config.ProxyXUDP}}
	p := newP2PMapper(&cfg, slog.New(slog.DiscardHandler))
	if p == nil {
		t.Fatal("no mapper with an xudp proxy")
	}
	p.close()
	cfg.P2P.PortMapping = false
	if newP2PMapper(&cfg, slog.New(slog.DiscardHandler)) != nil {
		t.Fatal("a mapper with p2p.portMapping = false")
	}
}

func TestGatherCandidates(t *testing.T) {
	hosts := []protocol.Candidate{{Kind: "host", Addr: "10.1.0.10:4000"}}
	srflx := netip.MustParseAddrPort("198.51.100.23:5000")
	mapped := []protocol.Candidate{{Kind: "mapped", Addr: "203.0.113.7:24000"}, {Kind: "mapped", Addr: "198.51.100.23:24000"}}
	got := gatherCandidates(append([]protocol.Candidate(nil), hosts...), srflx, mapped, nil)
	want := append(append(append([]protocol.Candidate(nil), hosts...), protocol.Candidate{Kind: "srflx", Addr: "198.51.100.23:5000"}), mapped...)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	b, _ := json.Marshal(&protocol.P2PInfo{Candidates: got, NAT: "APDM/APDF"})
	if _, err := protocol.DecodeP2PInfo(b); err != nil {
		t.Fatalf("the protocol refuses the mapped candidates: %v", err)
	}
	many := make([]protocol.Candidate, protocol.MaxCandidates)
	for i := range many {
		many[i] = protocol.Candidate{Kind: "host", Addr: fmt.Sprintf("10.1.0.%d:4000", i+1)}
	}
	if got := gatherCandidates(many, srflx, mapped, nil); len(got) != protocol.MaxCandidates {
		t.Fatalf("%d candidates, want at most %d", len(got), protocol.MaxCandidates)
	}
}

// fakeProber adds Probe to fakeMapper for hopc nat.
type fakeProber struct {
	*fakeMapper
	probe portmap.ProbeResult
}

func (f *fakeProber) Probe(context.Context) portmap.ProbeResult { return f.probe }

func TestPrintPortMapping(t *testing.T) {
	ext := netip.MustParseAddr("203.0.113.7")
	public := netip.MustParseAddr("198.51.100.23")
	gw := netip.MustParseAddr("10.3.0.1")
	t.Run("answered", func(t *testing.T) {
		f := &fakeProber{fakeMapper: &fakeMapper{ext: ext}, probe: portmap.ProbeResult{Gateway: gw, PCP: true, NATPMP: true, UPnP: true,
			Service: "WANIPConnection:2", External: ext}}
		var b strings.Builder
		printPortMapping(context.Background(), &b, f, 4000, public)
		out := b.String()
		for _, want := range []string{"port mapping (gateway 10.3.0.1)", "PCP:              yes", "NAT-PMP:          yes",
			"UPnP IGD:         yes (WANIPConnection:2)", "answered:         PCP, NAT-PMP, UPnP IGD", "external address: 203.0.113.7 (hops sees 198.51.100.23",
			"test mapping:     udp 4000 -> 203.0.113.7:24000 via PCP, lifetime 20m0s", "also offered at:  198.51.100.23:24000",
			"test mapping deleted: yes"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if _, u, live, _ := f.state(); live != 0 || len(u) != 1 {
			t.Fatalf("the test mapping was not deleted: unmaps %v, live %d", u, live)
		}
	})
	t.Run("UPnP only", func(t *testing.T) {
		why := fmt.Errorf("%w: fake", portmap.ErrNoGateway)
		f := &fakeProber{fakeMapper: &fakeMapper{ext: ext}, probe: portmap.ProbeResult{Gateway: gw, PCPErr: why, NATPMPErr: errors.Join(why, why), UPnP: true,
			Service: "WANIPConnection:1", External: ext}}
		var b strings.Builder
		printPortMapping(context.Background(), &b, f, 4000, public)
		if out := b.String(); !strings.Contains(out, "answered:         UPnP IGD\n") ||
			!strings.Contains(out, "NAT-PMP:          no (portmap: no port-mapping gateway answered: fake; portmap: no port-mapping gateway answered: fake)\n") {
			t.Errorf("output does not say only UPnP answered:\n%s", out)
		}
	})
	t.Run("silent", func(t *testing.T) {
		why := fmt.Errorf("%w: fake", portmap.ErrNoGateway)
		f := &fakeProber{fakeMapper: &fakeMapper{ext: ext}, probe: portmap.ProbeResult{Gateway: gw, PCPErr: why, NATPMPErr: why, UPnPErr: why}}
		var b strings.Builder
		printPortMapping(context.Background(), &b, f, 4000, public)
		out := b.String()
		for _, want := range []string{"PCP:              no (portmap: no port-mapping gateway answered: fake)", "answered:         none", "No gateway answers"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if maps, _, _, _ := f.state(); maps != 0 {
			t.Fatalf("%d test mappings asked of a silent gateway", maps)
		}
	})
}

// probeMapper is a fake port mapper that also answers Probe.
type probeMapper struct {
	portMapper
	res portmap.ProbeResult
}

func (p probeMapper) Probe(context.Context) portmap.ProbeResult { return p.res }

// learn: a probe that finds a gateway lets the first attempt wait the full
// mapWait; one that finds none makes attempts skip the mapping at once.
func TestMapperLearnsFromProbe(t *testing.T) {
	for _, c := range []struct {
		name     string
		res      portmap.ProbeResult
		answered bool
		skipping bool
	}{
		{"gateway", portmap.ProbeResult{PCP: true}, true, false},
		{"none", portmap.ProbeResult{}, false, true},
	} {
		p := newMapperWith(probeMapper{res: c.res}, slog.New(slog.DiscardHandler))
		p.learn()
		p.wg.Wait()
		p.mu.Lock()
		answered, skipping := p.answered, time.Now().Before(p.skipUntil)
		p.mu.Unlock()
		if answered != c.answered || skipping != c.skipping {
			t.Errorf("%s: answered %v skipping %v, want %v %v", c.name, answered, skipping, c.answered, c.skipping)
		}
	}
	var none *p2pMapper
	none.learn() // a client without a mapper: nothing happens
}

// keepFlow: a PCP gateway gets a PEER request for the punched flow, kept
// until release (or the flow's context ends); a gateway known not to speak
// PCP gets none; one that turns out not to is remembered.
func TestMapperKeepFlow(t *testing.T) {
	ext := netip.MustParseAddr("203.0.113.7")
	remote := netip.MustParseAddrPort("198.51.100.22:41000")
	log := slog.New(slog.DiscardHandler)
	t.Run("PCP: kept until release", func(t *testing.T) {
		f := &fakeMapper{ext: ext}
		p := newMapperWith(f, log)
		defer p.close()
		release := p.keepFlow(context.Background(), 4000, remote)
		waitFor(t, "the PEER mapping", func() bool { _, live := f.peerState(); return live[remote] == 4000 })
		release()
		release()
		waitFor(t, "the PEER mapping deleted", func() bool { _, live := f.peerState(); return len(live) == 0 })
		if calls, _ := f.peerState(); calls != 1 {
			t.Fatalf("%d PEER requests, want 1", calls)
		}
	})
	t.Run("PCP: the flow's context ends", func(t *testing.T) {
		f := &fakeMapper{ext: ext}
		p := newMapperWith(f, log)
		defer p.close()
		ctx, cancel := context.WithCancel(context.Background())
		defer p.keepFlow(ctx, 4001, remote)()
		waitFor(t, "the PEER mapping", func() bool { _, live := f.peerState(); return len(live) == 1 })
		cancel()
		waitFor(t, "the PEER mapping deleted", func() bool { _, live := f.peerState(); return len(live) == 0 })
	})
	t.Run("released before the gateway answers", func(t *testing.T) {
		f := &fakeMapper{ext: ext, delay: time.Hour}
		p := newMapperWith(f, log)
		release := p.keepFlow(context.Background(), 4002, remote)
		waitFor(t, "the PEER request", func() bool { calls, _ := f.peerState(); return calls == 1 })
		release()
		p.close() // waits for the request to end: it must not hang
		if _, live := f.peerState(); len(live) != 0 {
			t.Fatalf("live PEER mappings after release: %v", live)
		}
	})
	t.Run("close deletes through the portmap client", func(t *testing.T) {
		f := &fakeMapper{ext: ext}
		p := newMapperWith(f, log)
		p.keepFlow(context.Background(), 4003, remote)
		waitFor(t, "the PEER mapping", func() bool { _, live := f.peerState(); return len(live) == 1 })
		p.close()
		if _, _, _, closed := f.state(); !closed {
			t.Fatal("the portmap client was not closed")
		}
	})
	t.Run("no PCP: remembered", func(t *testing.T) {
		f := &fakeMapper{ext: ext, noPCP: true}
		p := newMapperWith(f, log)
		defer p.close()
		p.keepFlow(context.Background(), 4004, remote)()
		waitFor(t, "the mapper to learn the gateway has no PCP", func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.pcp == pcpNo
		})
		p.keepFlow(context.Background(), 4005, remote)()
		if calls, _ := f.peerState(); calls != 1 {
			t.Fatalf("%d PEER requests, want 1 (the second flow knows there is no PCP)", calls)
		}
	})
	t.Run("mapping by another method: no PEER asked", func(t *testing.T) {
		f := &fakeMapper{ext: ext}
		p := newMapperWith(probeMapper{portMapper: f, res: portmap.ProbeResult{NATPMP: true}}, log)
		defer p.close()
		p.learn()
		p.wg.Wait()
		p.keepFlow(context.Background(), 4006, remote)()
		if calls, _ := f.peerState(); calls != 0 {
			t.Fatalf("%d PEER requests to a NAT-PMP-only gateway", calls)
		}
	})
	t.Run("nil mapper", func(t *testing.T) {
		var p *p2pMapper
		p.keepFlow(context.Background(), 4007, remote)()
	})
}
