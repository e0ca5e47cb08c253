package portmap

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

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

var loopback = netip.MustParseAddr("127.0.0.1")

// newTestClient returns a client whose gateway is 127.0.0.1, talking PCP and
// NAT-PMP to g and SSDP to f. Nothing leaves loopback: there is no
// multicast SSDP in unit tests.
func newTestClient(t *testing.T, g *fakeGW, f *fakeIGD, cfg Config) (*Client, *logBuf) {
	t.Helper()
	lb := &logBuf{}
	cfg.Logger = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Gateway, cfg.LocalAddr = loopback, loopback
	if cfg.Timeout == 0 {
		cfg.Timeout = 300 * time.Millisecond
	}
	if f == nil {
		f = newFakeIGD(t, "")
	}
	c, err := newClient(cfg, g.port(), f.ssdpAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			t.Logf("log:\n%s", lb)
		}
	})
	return c, lb
}

// waitFor polls cond until it holds or 20 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"ipv6 gateway", Config{Gateway: netip.MustParseAddr("fe80::1")}, false},
		{"lifetime 1s", Config{Lifetime: time.Second}, false},
		{"lifetime fraction", Config{Lifetime: 2500 * time.Millisecond}, false},
		{"lifetime 8 days", Config{Lifetime: 8 * 24 * time.Hour}, false},
		{"negative timeout", Config{Timeout: -time.Second}, false},
		{"retry min above max", Config{RetryMin: time.Minute, RetryMax: time.Second}, false},
		{"unknown method", Config{Methods: []Method{"nat-pmp"}}, false},
		{"method twice", Config{Methods: []Method{MethodPCP, MethodPCP}}, false},
		{"forced upnp", Config{Methods: []Method{MethodUPnP}}, true},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestBadRequests(t *testing.T) {
	c, _ := newTestClient(t, newFakeGW(t, "pcp"), nil, Config{})
	ctx := context.Background()
	if _, err := c.Map(ctx, "sctp", 1); !errors.Is(err, ErrBadRequest) {
		t.Errorf("Map sctp: %v", err)
	}
	if _, err := c.Map(ctx, "udp", 0); !errors.Is(err, ErrBadRequest) {
		t.Errorf("Map port 0: %v", err)
	}
	if _, err := c.Peer(ctx, "udp", 1000, netip.AddrPort{}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("Peer without remote: %v", err)
	}
	if err := c.Unmap(ctx, "udp", 1000, netip.AddrPort{}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("Unmap of nothing: %v", err)
	}
}

func TestPCPMapRenewClose(t *testing.T) {
	g := newFakeGW(t, "pcp")
	c, _ := newTestClient(t, g, nil, Config{Lifetime: 2 * time.Second})
	m, err := c.Map(context.Background(), "udp", 4000)
	if err != nil {
		t.Fatal(err)
	}
	want := netip.MustParseAddrPort("203.0.113.7:4000")
	if m.Method != MethodPCP || m.External != want || m.Lifetime != 2*time.Second || m.Gateway != loopback {
		t.Fatalf("mapping %+v, want pcp %v for 2s", m, want)
	}
	if again, err := c.Map(context.Background(), "udp", 4000); err != nil || again != m {
		t.Fatalf("second Map: %+v, %v; want the same mapping", again, err)
	}
	// Renewed at half the lifetime (1 s), with the same nonce.
	waitFor(t, "two renewals", func() bool {
		n := 0
		for _, r := range g.requests() {
			if r.pcp && r.op == pcpOpMap && r.port == 4000 && r.lifetime == 2 {
				n++
			}
		}
		return n >= 3
	})
	var nonce [12]byte
	for i, r := range g.requests() {
		if i == 0 {
			nonce = r.nonce
		} else if r.nonce != nonce {
			t.Fatalf("request %d has another nonce: %+v", i, r)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	reqs := g.requests()
	if last := reqs[len(reqs)-1]; last.lifetime != 0 || last.nonce != nonce || g.live("udp/4000") {
		t.Fatalf("Close did not delete the mapping: last request %+v", last)
	}
	if _, err := c.Map(context.Background(), "udp", 4001); !errors.Is(err, ErrClosed) {
		t.Fatalf("Map after Close: %v", err)
	}
}

func TestFallbackToNATPMP(t *testing.T) {
	g := newFakeGW(t, "pmp")
	c, lb := newTestClient(t, g, nil, Config{})
	m, err := c.Map(context.Background(), "tcp", 2222)
	if err != nil {
		t.Fatal(err)
	}
	if m.Method != MethodNATPMP || m.External != netip.MustParseAddrPort("203.0.113.7:2222") {
		t.Fatalf("mapping %+v, want natpmp 203.0.113.7:2222", m)
	}
	if lb.count("no port-mapping gateway") != 0 {
		t.Fatalf("a gateway that answered was logged as missing:\n%s", lb)
	}
	p := c.Probe(context.Background())
	if p.PCP || !p.NATPMP || p.UPnP || p.External != netip.MustParseAddr("203.0.113.7") || !errors.Is(p.PCPErr, ErrUnsupported) {
		t.Fatalf("probe %+v", p)
	}
	if _, err := c.Peer(context.Background(), "udp", 3000, netip.MustParseAddrPort("192.0.2.1:1")); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("PEER on a NAT-PMP gateway: %v, want ErrUnsupported", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if g.live("tcp/2222") {
		t.Fatal("Close left the NAT-PMP mapping")
	}
}

func TestNoAnswerLogsOnceAndRetries(t *testing.T) {
	g := newFakeGW(t, "silent")
	changes := make(chan Mapping, 4)
	c, lb := newTestClient(t, g, nil, Config{
		Timeout: 200 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 100 * time.Millisecond,
		OnChange: func(m Mapping) { changes <- m },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, port := range []uint16{5000, 5001} {
		_, err := c.Map(ctx, "udp", port)
		if !errors.Is(err, ErrNoGateway) {
			t.Fatalf("Map: %v, want ErrNoGateway", err)
		}
		if ctx.Err() != nil {
			t.Fatal("Map ran into the test's deadline")
		}
	}
	waitFor(t, "background retries", func() bool { return lb.count("still no port-mapping gateway") >= 4 })
	if n := lb.count("no port-mapping gateway: UPnP, NAT-PMP and PCP unanswered"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, lb)
	}
	// The gateway comes up: the background retry maps both and says so.
	g.setMode("pcp")
	got := map[uint16]Mapping{}
	for len(got) < 2 {
		select {
		case m := <-changes:
			if !m.Valid() || m.Method == MethodUPnP { // PCP, or NAT-PMP when the switch came mid-attempt
				t.Fatalf("OnChange %+v", m)
			}
			got[m.InternalPort] = m
		case <-ctx.Done():
			t.Fatalf("mappings not made after the gateway came up; got %v", got)
		}
	}
	if lb.count("port-mapping gateway answers again") == 0 {
		t.Fatalf("no line says the gateway answers again:\n%s", lb)
	}
}

func TestEpochResetRecreates(t *testing.T) {
	g := newFakeGW(t, "pcp")
	changes := make(chan Mapping, 8)
	c, lb := newTestClient(t, g, nil, Config{Lifetime: 4 * time.Second, OnChange: func(m Mapping) { changes <- m }})
	ctx := context.Background()
	for _, port := range []uint16{6000, 6001} {
		if _, err := c.Map(ctx, "udp", port); err != nil {
			t.Fatal(err)
		}
	}
	g.reboot() // mappings gone, epoch back to 0
	got := map[uint16]bool{}
	for len(got) < 2 {
		select {
		case m := <-changes:
			got[m.InternalPort] = m.Valid()
		case <-time.After(20 * time.Second):
			t.Fatalf("not re-created after the epoch reset: %v\n%s", got, lb)
		}
	}
	if !got[6000] || !got[6001] || !g.live("udp/6000") || !g.live("udp/6001") {
		t.Fatalf("after the reboot: OnChange %v, live 6000 %v 6001 %v", got, g.live("udp/6000"), g.live("udp/6001"))
	}
	if lb.count("epoch went back") != 1 {
		t.Fatalf("want one epoch line:\n%s", lb)
	}
}

func TestUPnPSerialSearchAndMap(t *testing.T) {
	g := newFakeGW(t, "silent")
	f := newFakeIGD(t, stIGDv1) // answers only IGDv1
	c, _ := newTestClient(t, g, f, Config{Methods: []Method{MethodUPnP}, Description: "hop-test"})
	m, err := c.Map(context.Background(), "udp", 7000)
	if err != nil {
		t.Fatal(err)
	}
	if m.Method != MethodUPnP || m.External != netip.MustParseAddrPort("203.0.113.9:7000") {
		t.Fatalf("mapping %+v", m)
	}
	f.mu.Lock()
	sts, client := append([]string(nil), f.sts...), f.maps["UDP/7000"]
	f.mu.Unlock()
	// IGDv2 first, and not one IGDv1 search before the IGDv2 one ended.
	first1 := -1
	for i, st := range sts {
		if st == stIGDv1 && first1 < 0 {
			first1 = i
		}
		if st == stIGDv2 && first1 >= 0 {
			t.Fatalf("IGDv2 searched again after IGDv1 began: %q", sts)
		}
	}
	if first1 <= 0 || sts[0] != stIGDv2 {
		t.Fatalf("search order %q: want IGDv2 first, then IGDv1", sts)
	}
	if client != "127.0.0.1" {
		t.Fatalf("NewInternalClient %q", client)
	}
	if p := c.Probe(context.Background()); !p.UPnP || p.Service != "WANIPConnection:1" || p.External != netip.MustParseAddr("203.0.113.9") {
		t.Fatalf("probe %+v", p)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.maps["UDP/7000"]; ok {
		t.Fatalf("Close did not delete the UPnP mapping; actions %q", f.actions)
	}
}

// TestUPnPControlURLMoved: the router restarts on a new HTTP port, so the
// renewal's SOAP request fails (go-libp2p issue 3224); the client discovers
// the gateway again and re-creates the mapping on the new control URL.
func TestUPnPControlURLMoved(t *testing.T) {
	g := newFakeGW(t, "silent")
	f := newFakeIGD(t, stIGDv1)
	changes := make(chan Mapping, 4)
	c, lb := newTestClient(t, g, f, Config{
		Methods: []Method{MethodUPnP}, Lifetime: 2 * time.Second,
		OnChange: func(m Mapping) { changes <- m },
	})
	if _, err := c.Map(context.Background(), "udp", 7100); err != nil {
		t.Fatal(err)
	}
	f.reboot()
	select {
	case m := <-changes:
		if !m.Valid() || m.Method != MethodUPnP {
			t.Fatalf("OnChange %+v", m)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("not re-created after the control URL moved:\n%s", lb)
	}
	if !f.mapped("UDP/7100") {
		t.Fatal("the restarted IGD has no mapping")
	}
	if lb.count("renewal failed; discovering the gateway again") != 1 {
		t.Fatalf("want one renewal-failed line:\n%s", lb)
	}
}

// TestRefusedLogsOnce: a gateway that answers "not authorized" is not
// "no gateway"; the failure is logged once, retries go to debug.
func TestRefusedLogsOnce(t *testing.T) {
	g := newFakeGW(t, "refuse")
	c, lb := newTestClient(t, g, nil, Config{
		Methods: []Method{MethodPCP, MethodNATPMP}, RetryMin: 20 * time.Millisecond, RetryMax: 40 * time.Millisecond,
	})
	_, err := c.Map(context.Background(), "udp", 8000)
	if !errors.Is(err, ErrRefused) || errors.Is(err, ErrNoGateway) {
		t.Fatalf("Map: %v, want ErrRefused", err)
	}
	waitFor(t, "retries", func() bool { return lb.count(`level=DEBUG msg="port mapping failed"`) >= 3 })
	if n := lb.count(`level=WARN msg="port mapping failed"`); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, lb)
	}
	if lb.count("no port-mapping gateway") != 0 {
		t.Fatalf("a refusing gateway was logged as missing:\n%s", lb)
	}
}

func TestUnmap(t *testing.T) {
	g := newFakeGW(t, "pcp")
	c, _ := newTestClient(t, g, nil, Config{})
	ctx := context.Background()
	if _, err := c.Map(ctx, "tcp", 9000); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Map(ctx, "udp", 9000); err != nil {
		t.Fatal(err)
	}
	if err := c.Unmap(ctx, "tcp", 9000, netip.AddrPort{}); err != nil {
		t.Fatal(err)
	}
	if g.live("tcp/9000") || !g.live("udp/9000") {
		t.Fatalf("after Unmap tcp: tcp live %v, udp live %v", g.live("tcp/9000"), g.live("udp/9000"))
	}
	if ms := c.Mappings(); len(ms) != 1 || ms[0].Protocol != "udp" || !ms[0].Valid() {
		t.Fatalf("Mappings() = %+v", ms)
	}
}

// TestUPnPv2WithoutAddAny: a gateway that lists WANIPConnection:2 but
// answers AddAnyPortMapping with 401 Invalid Action gets AddPortMapping.
func TestUPnPv2WithoutAddAny(t *testing.T) {
	g := newFakeGW(t, "silent")
	f := newFakeIGD(t, stIGDv2)
	f.mu.Lock()
	f.service = "urn:schemas-upnp-org:service:WANIPConnection:2"
	f.mu.Unlock()
	c, _ := newTestClient(t, g, f, Config{Methods: []Method{MethodUPnP}})
	m, err := c.Map(context.Background(), "tcp", 7200)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	actions := append([]string(nil), f.actions...)
	f.mu.Unlock()
	if m.External != netip.MustParseAddrPort("203.0.113.9:7200") || len(actions) < 2 || actions[0] != "AddAnyPortMapping" || actions[1] != "AddPortMapping" {
		t.Fatalf("mapping %+v after actions %q", m, actions)
	}
	if p := c.Probe(context.Background()); p.Service != "WANIPConnection:2" {
		t.Fatalf("probe %+v", p)
	}
}

// TestUPnPNewMappingAfterRestart: the router restarts on a new HTTP port
// between two mappings. The new mapping fails at the old control URL; the
// client searches again, maps on the new one, and re-creates the older
// mapping that the restart lost, without waiting for its renewal.
func TestUPnPNewMappingAfterRestart(t *testing.T) {
	g := newFakeGW(t, "silent")
	f := newFakeIGD(t, stIGDv1)
	c, lb := newTestClient(t, g, f, Config{Methods: []Method{MethodUPnP}, Lifetime: time.Hour})
	ctx := context.Background()
	if _, err := c.Map(ctx, "udp", 7200); err != nil {
		t.Fatal(err)
	}
	f.reboot()
	m, err := c.Map(ctx, "udp", 7201)
	if err != nil {
		t.Fatalf("Map after the restart: %v", err)
	}
	if m.Method != MethodUPnP || !f.mapped("UDP/7201") {
		t.Fatalf("mapping %+v after the restart; on the IGD: %v", m, f.mapped("UDP/7201"))
	}
	// The client logs the re-creation once the IGD has answered, so the
	// mapping can be seen on the IGD a moment before the log line.
	waitFor(t, "the older mapping re-created", func() bool {
		return f.mapped("UDP/7200") && lb.count(`msg="port mapping re-created" proto=udp port=7200`) > 0
	})
	if lb.count("found again; re-creating every mapping") != 1 || lb.count(`msg="port mapping re-created" proto=udp port=7200`) != 1 {
		t.Fatalf("the log does not say what happened:\n%s", lb)
	}
}

// TestMethodThatWorkedFirst: on a gateway that speaks only UPnP, the
// second mapping goes to UPnP at once, without PCP and NAT-PMP requests
// (each of which costs a Timeout when the gateway drops them).
func TestMethodThatWorkedFirst(t *testing.T) {
	g := newFakeGW(t, "silent")
	f := newFakeIGD(t, stIGDv1)
	c, _ := newTestClient(t, g, f, Config{})
	ctx := context.Background()
	if m, err := c.Map(ctx, "udp", 7300); err != nil || m.Method != MethodUPnP {
		t.Fatalf("first mapping %+v, %v: want UPnP", m, err)
	}
	asked := g.packets()
	if asked == 0 {
		t.Fatal("PCP and NAT-PMP were not tried first")
	}
	start := time.Now()
	if m, err := c.Map(ctx, "udp", 7301); err != nil || m.Method != MethodUPnP {
		t.Fatalf("second mapping %+v, %v: want UPnP", m, err)
	}
	if n := g.packets(); n != asked {
		t.Fatalf("%d PCP/NAT-PMP requests for the second mapping, want none", n-asked)
	}
	t.Logf("second mapping in %v", time.Since(start))
}

// TestProbeSilentLogsOnce: the probe of a gateway that answers nothing
// says so once; later probes and mappings that find nothing do not
// repeat it.
func TestProbeSilentLogsOnce(t *testing.T) {
	g := newFakeGW(t, "silent")
	c, lb := newTestClient(t, g, nil, Config{Timeout: 200 * time.Millisecond, RetryMin: time.Hour})
	ctx := context.Background()
	for range 2 {
		if p := c.Probe(ctx); p.PCP || p.NATPMP || p.UPnP {
			t.Fatalf("probe %+v", p)
		}
	}
	if _, err := c.Map(ctx, "udp", 7400); !errors.Is(err, ErrNoGateway) {
		t.Fatalf("Map: %v, want ErrNoGateway", err)
	}
	if n := lb.count("no port-mapping gateway: UPnP, NAT-PMP and PCP unanswered"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, lb)
	}
	// A gateway that answers resets it: the next silence is said again.
	g.setMode("pcp")
	if p := c.Probe(ctx); !p.PCP {
		t.Fatalf("probe %+v, want PCP", p)
	}
	g.setMode("silent")
	c.Probe(ctx)
	if n := lb.count("no port-mapping gateway: UPnP, NAT-PMP and PCP unanswered"); n != 2 {
		t.Fatalf("logged %d times after the gateway answered and went silent again, want twice:\n%s", n, lb)
	}
}
