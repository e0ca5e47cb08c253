package netlab

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeTB records Skip, Fatal and Fatalf, which end the goroutine like the real ones.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skip(args ...any) {
	f.skipped = fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatal(args ...any) {
	f.failed = fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestRequireEnv(t *testing.T) {
	try := func(missing []string) *fakeTB {
		f := &fakeTB{TB: t}
		done := make(chan struct{})
		go func() { defer close(done); requireEnv(f, missing) }()
		<-done
		return f
	}
	t.Setenv(RequireEnv, "")
	if f := try(nil); f.skipped != "" || f.failed != "" {
		t.Errorf("nothing missing: skipped %q, failed %q", f.skipped, f.failed)
	}
	f := try([]string{"not root (euid 1000)"})
	if want := "netlab: needs root and nftables (nft) and iproute2 (ip): not root (euid 1000)"; f.skipped != want || f.failed != "" {
		t.Errorf("skipped %q, failed %q; want skip %q", f.skipped, f.failed, want)
	}
	t.Setenv(RequireEnv, "1")
	f = try([]string{"nft not found in PATH"})
	if f.skipped != "" || !strings.Contains(f.failed, "nft not found in PATH") || !strings.Contains(f.failed, RequireEnv) {
		t.Errorf("with %s=1: skipped %q, failed %q; want a failure", RequireEnv, f.skipped, f.failed)
	}
}

// TestGatewayRefusesLAN: a LAN that is not an IPv4 /24 fails the test
// before anything is built.
func TestGatewayRefusesLAN(t *testing.T) {
	for _, lan := range []string{"10.1.0.0/16", "10.1.0.5/24", "fd00::/120", "ten"} {
		f := &fakeTB{TB: t}
		done := make(chan struct{})
		go func() { defer close(done); (&Lab{tb: f}).Gateway(GatewayConfig{Name: "gw", LAN: lan}) }()
		<-done
		if !strings.Contains(f.failed, fmt.Sprintf("GatewayConfig.LAN %q: want an IPv4 /24 network", lan)) {
			t.Errorf("LAN %q: failed %q", lan, f.failed)
		}
	}
}

func TestCheckBlackholedRefusesRoutedAddress(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip")
	}
	// 127.0.0.1 is always routed (local table): never a lab address.
	if err := checkBlackholed(netip.MustParseAddr("127.0.0.1")); err == nil {
		t.Error("checkBlackholed(127.0.0.1) = nil")
	}
}

// labRoutes returns the CIDRs of the blackhole routes with this metric.
func labRoutes(t *testing.T, metric uint32) []string {
	t.Helper()
	out, err := run(nil, "ip", "-j", "route", "show", "type", "blackhole", "proto", routeProto)
	if err != nil {
		t.Fatal(err)
	}
	var routes []struct {
		Dst    string `json:"dst"`
		Metric uint32 `json:"metric"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		t.Fatal(err)
	}
	var dsts []string
	for _, r := range routes {
		if r.Metric == metric {
			dsts = append(dsts, r.Dst)
		}
	}
	slices.Sort(dsts)
	return dsts
}

// labNamespaces returns the namespaces whose names start with prefix.
func labNamespaces(t *testing.T, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names
}

func TestCloseRemovesEverything(t *testing.T) {
	t.Parallel()
	l := New(t)
	wan := l.Network("wan", "198.51.100.0/24")
	lan := l.Network("lan", "10.71.0.0/24")
	lan2 := l.Network("lan2", "10.71.0.0/24") // same CIDR: one route
	l.NAT("nat", wan, "198.51.100.1", lan, "10.71.0.1", NATConfig{})
	h := l.Host("h")
	h.Attach(lan2, "10.71.0.2")
	p, err := h.Start(t.Context(), "sleep", "300")
	if err != nil {
		t.Fatal(err)
	}
	// A NAT that fails halfway: its host and WAN leg exist, the LAN leg not.
	if _, err := l.nat("bad", wan, "198.51.100.2", lan, "10.99.0.1", NATConfig{}); err == nil {
		t.Fatal("NAT with a LAN address outside the LAN succeeded")
	}
	if _, err := l.network("v6", "2001:db8::/64"); err == nil {
		t.Error("IPv6 network accepted")
	}
	if _, err := h.attach(wan, "198.51.100.1"); err == nil {
		t.Error("duplicate address accepted")
	}

	if got, want := labRoutes(t, l.metric), []string{"10.71.0.0/24", "198.51.100.0/24"}; !slices.Equal(got, want) {
		t.Errorf("blackhole routes during the lab: %v, want %v", got, want)
	}
	if got := labNamespaces(t, l.Prefix()); len(got) != 6 {
		t.Errorf("namespaces during the lab: %v, want 6", got)
	}

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := labRoutes(t, l.metric); len(got) != 0 {
		t.Errorf("blackhole routes after Close: %v", got)
	}
	if got := labNamespaces(t, l.Prefix()); len(got) != 0 {
		t.Errorf("namespaces after Close: %v", got)
	}
	if err := p.Wait(); err == nil {
		t.Error("sleep 300 exited cleanly: it was not killed")
	}
	if pidAlive(p.Cmd.Process.Pid) {
		t.Errorf("pid %d still alive", p.Cmd.Process.Pid)
	}
}

// deadPID returns the PID of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if pidAlive(pid) {
		t.Skipf("pid %d reused already", pid)
	}
	return pid
}

// Not parallel: parallel tests' New would sweep the fake leftovers too.
func TestSweep(t *testing.T) {
	live := New(t)
	live.Host("h")

	pid := deadPID(t)
	gone := fmt.Sprintf("%s%dx00c0de-left", stem, pid)
	busy := fmt.Sprintf("%s%dx00c0de-busy", stem, pid)
	cidr := netip.MustParsePrefix("203.0.113.0/24")
	metric := uint32(pid)<<10 | 1
	t.Cleanup(func() {
		run(nil, "ip", "netns", "del", gone)
		run(nil, "ip", "netns", "del", busy)
		delRoute(cidr, metric)
	})
	for _, ns := range []string{gone, busy} {
		if _, err := run(nil, "ip", "netns", "add", ns); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := run(nil, "ip", "route", "add", "blackhole", cidr.String(), "proto", routeProto, "metric", fmt.Sprint(metric)); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("ip", "netns", "exec", busy, "sleep", "300")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	// Wait until the sleeper is inside busy.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		out, _ := run(nil, "ip", "netns", "pids", busy)
		if strings.TrimSpace(string(out)) != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sleeper never entered its namespace")
		}
	}

	if err := Sweep(); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if nsExists(gone) {
		t.Errorf("%s survived Sweep", gone)
	}
	if got := labRoutes(t, metric); len(got) != 0 {
		t.Errorf("route %v survived Sweep", got)
	}
	if !nsExists(busy) {
		t.Errorf("%s was swept with a process inside", busy)
	}
	if got := labNamespaces(t, live.Prefix()); len(got) != 1 {
		t.Errorf("live lab's namespaces after Sweep: %v, want 1", got)
	}

	sleeper.Process.Kill()
	sleeper.Wait()
	if err := Sweep(); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if nsExists(busy) {
		t.Errorf("%s survived Sweep once empty", busy)
	}
}

// crashChildEnv makes TestCrashLeftovers act as the crashing child.
const crashChildEnv = "NETLAB_CRASH_CHILD"

// A test binary that dies without cleanup leaves namespaces and routes; its
// processes die with it (Pdeathsig) and the next Sweep removes the rest.
func TestCrashLeftovers(t *testing.T) {
	if os.Getenv(crashChildEnv) == "1" {
		l := New(t)
		n := l.Network("n", "10.72.0.0/24")
		h := l.Host("h")
		h.Attach(n, "10.72.0.1")
		p, err := h.Start(t.Context(), "sleep", "300")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("LAB %s %d %d\n", l.Prefix(), l.metric, p.Cmd.Process.Pid)
		os.Exit(3) // crash: no cleanup
	}
	// Not parallel, so that no other test of this binary sweeps in between.
	New(t) // skips or fails like every lab test
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashLeftovers$")
	cmd.Env = append(os.Environ(), crashChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	var prefix string
	var metric uint32
	var pid int
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "LAB ") {
			fmt.Sscanf(line, "LAB %s %d %d", &prefix, &metric, &pid)
		}
	}
	if prefix == "" {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Cleanup(func() { // in case the assertions below fail
		for _, ns := range labNamespaces(t, prefix) {
			run(nil, "ip", "netns", "del", ns)
		}
		delRoute(netip.MustParsePrefix("10.72.0.0/24"), metric)
	})
	for deadline := time.Now().Add(5 * time.Second); pidAlive(pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("child's process %d outlived it", pid)
		}
	}
	// The child printed its line after making 2 namespaces and 1 route.
	// Another test binary's New may have swept them already.
	if ns, routes := labNamespaces(t, prefix), labRoutes(t, metric); len(ns) != 2 || len(routes) != 1 {
		t.Logf("leftovers before Sweep: namespaces %v, routes %v (partly swept by another process)", ns, routes)
	}
	if err := Sweep(); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if got := labNamespaces(t, prefix); len(got) != 0 {
		t.Errorf("namespaces after Sweep: %v", got)
	}
	if got := labRoutes(t, metric); len(got) != 0 {
		t.Errorf("routes after Sweep: %v", got)
	}
}
